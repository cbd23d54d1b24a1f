-- On AWS the worker de-duplicates platform deliveries (shared/queue/dedup.py): each delivery is
-- recorded with the send that queued it (a random id in the message body, the same on SQS's
-- retries and after a redrive from the dead-letter queue), so that message runs again when it
-- comes back and any other message carrying the same delivery is dropped. NULL for deliveries
-- the local Postgres queue accepted (it de-duplicates as it queues).
ALTER TABLE inbound_deliveries ADD COLUMN IF NOT EXISTS sent_as text;
