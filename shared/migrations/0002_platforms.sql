-- Chat platforms: accepted deliveries, the local job queue, conversations, posted messages.

-- One row per delivery a platform made and we accepted (Slack event_id, Telegram update_id,
-- Discord interaction id): a redelivery finds its row and is acknowledged without new work.
CREATE TABLE inbound_deliveries (
    platform    text        NOT NULL,
    delivery_id text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, delivery_id)
);
CREATE INDEX inbound_deliveries_received_at ON inbound_deliveries (received_at);

-- The local queue (on AWS, SQS takes its place). Workers take jobs with FOR UPDATE SKIP
-- LOCKED; a running job whose lease ran out (its worker died) is taken again.
CREATE TABLE jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text        NOT NULL,
    payload      jsonb       NOT NULL,
    state        text        NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX jobs_runnable ON jobs (run_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_failed ON jobs (finished_at) WHERE state = 'failed';
CREATE INDEX jobs_finished_at ON jobs (finished_at) WHERE state IN ('done', 'failed');

-- Wake idle workers at once instead of waiting for their next poll.
CREATE FUNCTION charla_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('charla_jobs', '');
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_notify AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION charla_jobs_notify();

-- A conversation per Slack thread, Telegram chat (or topic), Discord channel and user.
CREATE TABLE conversations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform   text        NOT NULL,
    key        text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, key)
);

CREATE TABLE turns (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id bigint      NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            text        NOT NULL CHECK (role IN ('user', 'assistant')),
    author          text,
    content         text        NOT NULL,
    delivery_id     text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, delivery_id, role)
);
CREATE INDEX turns_conversation ON turns (conversation_id, id);

-- Every message the worker posts, recorded before it is posted: a job run again after a crash
-- or an error edits what was posted instead of posting it twice.
CREATE TABLE outbound_messages (
    delivery   text        NOT NULL,  -- platform:delivery_id of the question answered
    part       integer     NOT NULL,
    state      text        NOT NULL CHECK (state IN ('sending', 'sent')),
    ref        text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (delivery, part)
);
CREATE INDEX outbound_messages_updated_at ON outbound_messages (updated_at);
