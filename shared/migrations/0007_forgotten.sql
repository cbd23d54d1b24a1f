-- People who asked to be forgotten, for a while after: a message of theirs still in a queue
-- when they asked (an SQS message, a job being answered or retried) is answered, but nothing
-- from it is stored again. A keyed digest of the person only (KeyRing.digest of
-- "platform:user"), never the id; removed by the retention sweep after 15 days (SQS keeps a
-- message 14 days at most).
CREATE TABLE forgotten (
    digest       bytea       PRIMARY KEY,
    forgotten_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX forgotten_forgotten_at ON forgotten (forgotten_at);
