-- The knowledge base: collections of documents, their chunks with vectors and full-text
-- search, who may read which collection; and vectors for long-term conversation memory.

CREATE TABLE collections (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text        NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    -- The vector space its chunks live in: a query is only ever embedded with this model.
    embedding_model text        NOT NULL,
    dimensions      integer     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE documents (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id bigint      NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    source        text        NOT NULL,  -- the path or name it was ingested as
    title         text,
    media_type    text        NOT NULL,
    content_hash  text        NOT NULL,  -- sha256 of the file: unchanged files are skipped
    bytes         integer     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection_id, source)
);

CREATE TABLE chunks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id   bigint      NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    collection_id bigint      NOT NULL,  -- copied from the document: filters need no join
    ordinal       integer     NOT NULL,
    heading       text,                  -- the section it sits under, for citations
    page          integer,               -- for PDFs
    content       text        NOT NULL,
    language      regconfig   NOT NULL,  -- 'english', 'spanish' or 'simple'
    -- Words of the heading count too: "Vacation" finds the chunks under that heading.
    tsv           tsvector    GENERATED ALWAYS AS
                  (to_tsvector(language, coalesce(heading, '') || ' ' || content)) STORED,
    embedding     vector(384) NOT NULL
);
-- ef_construction 128 (pgvector's default is 64): on 200,000 chunks that default gave
-- recall@10 of 0.92-0.94 at ef_search 100, this 0.98-0.99, at p99 under 4 ms
-- (docs/benchmarks.md, python -m bench.retrieval).
CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 128);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE INDEX chunks_collection ON chunks (collection_id);
CREATE INDEX chunks_document ON chunks (document_id, ordinal);

-- Who may read a collection: 'slack:TEAM:CHANNEL', 'slack:TEAM' (a whole workspace),
-- 'telegram:CHAT', 'discord:GUILD', 'discord:GUILD:CHANNEL', 'discord:dm', 'api:CLIENT'.
CREATE TABLE collection_grants (
    collection_id bigint      NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    principal     text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, principal)
);
CREATE INDEX collection_grants_principal ON collection_grants (principal);

-- Long-term memory: earlier turns of the same conversation, recalled by meaning.
ALTER TABLE turns ADD COLUMN embedding vector(384);
CREATE INDEX turns_embedding ON turns USING hnsw (embedding vector_cosine_ops);
