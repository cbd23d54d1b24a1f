# An internal Network Load Balancer in front of the GPU hosts. TCP passes the gateway's
# streamed answers through untouched; its security group lets only the functions in, and the
# hosts accept the gateway port only from this security group.

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:A Network Load Balancer writes access logs for TLS listeners only; VPC flow logs record these connections.
  #checkov:skip=CKV_AWS_150:Stateless and internal; deletion protection would make tear-down a two-step job for nothing to lose.
  name                             = "${var.name}-gateway"
  internal                         = true
  load_balancer_type               = "network"
  subnets                          = var.subnet_ids
  security_groups                  = [var.security_group_id]
  enable_cross_zone_load_balancing = true
}

resource "aws_lb_target_group" "gateway" {
  name                 = "${var.name}-gateway"
  vpc_id               = var.vpc_id
  port                 = var.gateway_port
  protocol             = "TCP"
  target_type          = "instance"
  preserve_client_ip   = false # the hosts see the load balancer, whose security group they allow
  deregistration_delay = 120   # lets answers being streamed finish when a host leaves

  health_check {
    protocol            = "HTTP"
    path                = "/healthz" # 200 only while the engine behind the gateway answers
    port                = "traffic-port"
    healthy_threshold   = 2
    unhealthy_threshold = 3
    interval            = 15
    timeout             = 5
  }
}

resource "aws_lb_listener" "gateway" {
  load_balancer_arn = aws_lb.this.arn
  port              = var.gateway_port
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }
}
