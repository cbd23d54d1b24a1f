-- Messages and answers withheld by moderation: who, where, which check, which categories.
-- Never the text itself (see shared/moderation_log.py).
CREATE TABLE moderation_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    platform   text        NOT NULL,  -- slack | telegram | discord | api
    principal  text        NOT NULL,  -- where: the most specific scope (slack:T1:C2, api:CLIENT)
    subject    text        NOT NULL,  -- who: platform:user id, as the rate limits know them
    stage      text        NOT NULL CHECK (stage IN ('input', 'output')),
    source     text        NOT NULL CHECK (source IN ('policy', 'classifier')),
    categories text[]      NOT NULL
);

CREATE INDEX moderation_events_at ON moderation_events (at);
CREATE INDEX moderation_events_subject ON moderation_events (subject);
