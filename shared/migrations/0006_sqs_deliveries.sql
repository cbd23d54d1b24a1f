-- On AWS the worker de-duplicates platform deliveries (shared/sqs_queue.py): each delivery is
-- recorded with the SQS message that carries it, so that the message's own retries run again
-- and any other message carrying the same delivery is dropped. NULL for deliveries the local
-- Postgres queue accepted (it de-duplicates as it queues).
ALTER TABLE inbound_deliveries ADD COLUMN IF NOT EXISTS message_id text;
