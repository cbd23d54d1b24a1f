# The jobs between the webhooks and the worker. A job that fails max_receive_count times moves
# to the dead-letter queue, where it waits 14 days for an operator (README: "Failed jobs").

resource "aws_sqs_queue" "dead_letters" {
  name                              = "${var.name}-jobs-dlq"
  message_retention_seconds         = 1209600 # 14 days, SQS's most
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 3600
}

resource "aws_sqs_queue" "jobs" {
  name = "${var.name}-jobs"
  # AWS's advice for a Lambda event source: at least six times the function's timeout, so a
  # message is not handed out again while a slow attempt is still running.
  visibility_timeout_seconds        = min(43200, 6 * var.consumer_timeout_s)
  message_retention_seconds         = 345600 # 4 days
  receive_wait_time_seconds         = 20
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 3600

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters.arn
    maxReceiveCount     = var.max_receive_count
  })
}

# Only the job queue may send its failures here.
resource "aws_sqs_queue_redrive_allow_policy" "dead_letters" {
  queue_url = aws_sqs_queue.dead_letters.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.jobs.arn]
  })
}
