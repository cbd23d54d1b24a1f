# Charla on AWS: the wiring. Each part lives in modules/<part>; README.md walks through apply,
# platform set-up, secret rotation, scaling and tear-down, with a cost note per part.

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge({ Project = "charla", ManagedBy = "terraform", Deployment = var.name }, var.tags)
  }
}

locals {
  repo_root = abspath("${path.root}/../..")
  zip_paths = {
    for k, p in var.lambda_zip_paths : k => (startswith(p, "/") ? p : "${local.repo_root}/${p}")
  }
  images = {
    for k in ["gateway", "llama-cpp", "vllm", "tgi", "tei"] :
    k => "${module.artifacts.repository_urls[k]}:${var.image_tags[k]}"
  }
  model_server_url = "http://${module.load_balancer.dns_name}:${var.gateway_port}"
  database_url     = var.create_database ? module.database[0].url : var.database_url
}

module "kms" {
  source                                 = "./modules/kms"
  name                                   = var.name
  create_autoscaling_service_linked_role = var.create_autoscaling_service_linked_role
}

module "network" {
  source               = "./modules/network"
  name                 = var.name
  vpc_cidr             = var.vpc_cidr
  availability_zones   = var.availability_zones
  private_subnet_cidrs = var.private_subnet_cidrs
  worker_subnet_cidrs  = var.worker_subnet_cidrs
  public_subnet_cidrs  = var.public_subnet_cidrs
  nat_gateway_per_az   = var.nat_gateway_per_az
  kms_key_arn          = module.kms.key_arn
  log_retention_days   = var.log_retention_days
}

module "security" {
  source        = "./modules/security"
  name          = var.name
  vpc_id        = module.network.vpc_id
  gateway_port  = var.gateway_port
  database_port = var.database_port
}

module "artifacts" {
  source       = "./modules/artifacts"
  name         = var.name
  kms_key_arn  = module.kms.key_arn
  repositories = toset(["gateway", "llama-cpp", "vllm", "tgi", "tei"])
}

module "endpoints" {
  source            = "./modules/endpoints"
  name              = var.name
  vpc_id            = module.network.vpc_id
  subnet_ids        = module.network.private_subnet_ids
  route_table_ids   = module.network.private_route_table_ids
  security_group_id = module.security.endpoints_sg_id
  models_bucket_arn = module.artifacts.bucket_arn
}

module "load_balancer" {
  source            = "./modules/load_balancer"
  name              = var.name
  vpc_id            = module.network.vpc_id
  subnet_ids        = module.network.private_subnet_ids
  security_group_id = module.security.load_balancer_sg_id
  gateway_port      = var.gateway_port
}

# The hosts pull images and models at boot, and the functions call SQS and Secrets Manager: both
# take their subnets from module.endpoints, which hands them on once the endpoints in them exist.
# A reference, not a module-level depends_on: that would defer every data source in the module
# to apply time (the region, the partition), so plans would show changes that are not there.
module "gpu_hosts" {
  source                 = "./modules/gpu_hosts"
  name                   = var.name
  subnet_ids             = module.endpoints.subnet_ids
  security_group_id      = module.security.gpu_hosts_sg_id
  target_group_arn       = module.load_balancer.target_group_arn
  kms_key_arn            = module.kms.key_arn
  secrets_kms_key_arn    = module.kms.secrets_key_arn
  denied_parameter_arns  = module.secrets.parameters_path_arns
  instance_type          = var.gpu_instance_type
  ami_id                 = var.gpu_ami_id
  size                   = var.gpu_hosts
  volume_size_gb         = var.gpu_volume_size_gb
  gateway_port           = var.gateway_port
  models_bucket          = module.artifacts.bucket
  models_bucket_arn      = module.artifacts.bucket_arn
  registry               = module.artifacts.registry
  images                 = local.images
  repository_arns        = values(module.artifacts.repository_arns)
  engine                 = var.engine
  embeddings_engine      = var.embeddings_engine
  chat_model_path        = var.chat_model_path
  embedding_model_path   = var.embedding_model_path
  model_name             = var.model_name
  engine_parallel        = var.engine_parallel
  engine_ctx_size        = var.engine_ctx_size
  service_public_key_pem = var.service_public_key_pem
  compose_file           = file("${local.repo_root}/model_server/docker/compose.yaml")
  log_retention_days     = var.log_retention_days
}

module "queue" {
  source             = "./modules/queue"
  name               = var.name
  kms_key_arn        = module.kms.key_arn
  max_receive_count  = var.queue_max_receive_count
  consumer_timeout_s = var.worker_timeout_s
}

module "database" {
  source             = "./modules/database"
  count              = var.create_database ? 1 : 0
  name               = var.name
  subnet_ids         = module.network.private_subnet_ids
  security_group_id  = module.security.database_sg_id
  kms_key_arn        = module.kms.key_arn
  port               = var.database_port
  settings           = var.database
  log_retention_days = var.log_retention_days
}

module "secrets" {
  source       = "./modules/secrets"
  name         = var.name
  kms_key_arn  = module.kms.secrets_key_arn
  database_url = local.database_url
}

module "functions" {
  source                 = "./modules/functions"
  name                   = var.name
  zip_paths              = local.zip_paths
  runtime                = var.lambda_runtime
  architecture           = var.lambda_architecture
  private_subnet_ids     = module.endpoints.subnet_ids
  worker_subnet_ids      = module.network.worker_subnet_ids
  functions_sg_id        = module.security.functions_sg_id
  worker_internet_sg_id  = module.security.worker_internet_sg_id
  kms_key_arn            = module.kms.key_arn
  secrets_kms_key_arn    = module.kms.secrets_key_arn
  queue_arn              = module.queue.queue_arn
  queue_url              = module.queue.queue_url
  dead_letter_queue_arn  = module.queue.dead_letter_queue_arn
  app_secret_arn         = module.secrets.app_secret_arn
  parameters_path        = module.secrets.parameters_path
  parameters_path_arns   = module.secrets.parameters_path_arns
  model_server_url       = local.model_server_url
  discord_application_id = var.discord_application_id
  telegram_bot_username  = var.telegram_bot_username
  job_max_attempts       = var.queue_max_receive_count
  environment            = var.function_environment
  reserved_concurrency   = var.lambda_reserved_concurrency
  worker_timeout_s       = var.worker_timeout_s
  log_retention_days     = var.log_retention_days
}

module "api" {
  source             = "./modules/api"
  name               = var.name
  invoke_arns        = { for k, v in module.functions.invoke_arns : k => v if k != "worker" }
  function_names     = { for k, v in module.functions.function_names : k => v if k != "worker" }
  throttle           = var.api_throttle
  kms_key_arn        = module.kms.key_arn
  log_retention_days = var.log_retention_days
}
