-- pgvector for conversation memory and the knowledge base; the audit log of API exchanges.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE api_exchanges (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client            text        NOT NULL,
    model             text        NOT NULL,
    stream            boolean     NOT NULL,
    -- NULL when CHARLA_AUDIT_RETENTION_DAYS is 0: usage is kept, bodies are not.
    request_messages  jsonb,
    answer            text,
    finish_reason     text,
    prompt_tokens     integer,
    completion_tokens integer,
    first_token_ms    integer,
    latency_ms        integer     NOT NULL,
    status            smallint    NOT NULL,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX api_exchanges_created_at ON api_exchanges (created_at);
CREATE INDEX api_exchanges_client_created_at ON api_exchanges (client, created_at);
