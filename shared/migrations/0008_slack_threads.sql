-- Slack threads the bot was asked in: a reply there without a mention is answered too
-- (functions/slack/threads.py). Marked as soon as a question in the thread is accepted, not
-- once its answer is stored, so it holds while the first answer is being written and where no
-- conversation is kept (CHARLA_CONVERSATION_RETENTION_DAYS=0). A keyed digest of the thread
-- (KeyRing.digest of "team:channel:thread ts"), never the thread itself: a direct message's
-- channel names its person. Removed by the retention sweep CHARLA_JOB_RETENTION_DAYS after the
-- thread's last question, with the remembered deliveries.
CREATE TABLE slack_threads (
    digest   bytea       PRIMARY KEY,
    asked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_threads_asked_at ON slack_threads (asked_at);
