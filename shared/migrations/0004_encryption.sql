-- Message bodies sealed at rest with AES-256-GCM (shared/crypto.py): each sealed body sits in a
-- bytea column beside the id of the data key that sealed it.
--
-- Sealing needs the key, which the database never sees, so existing rows cannot be converted
-- here. The clear columns stay for rows written before this migration: the code reads either,
-- and `charla keys rotate` seals such rows and empties their clear columns.

-- Conversation history of the bots: a turn's text.
ALTER TABLE turns
    ALTER COLUMN content DROP NOT NULL,
    ADD COLUMN content_sealed bytea,
    ADD COLUMN key_id text,
    ADD CONSTRAINT turns_sealed_with_key CHECK ((content_sealed IS NULL) = (key_id IS NULL)),
    ADD CONSTRAINT turns_has_content CHECK (content IS NOT NULL OR content_sealed IS NOT NULL);

-- The audit log of API exchanges: the request's messages and the answer, sealed together.
ALTER TABLE api_exchanges
    ADD COLUMN body_sealed bytea,
    ADD COLUMN key_id text,
    ADD CONSTRAINT api_exchanges_sealed_with_key
        CHECK ((body_sealed IS NULL) = (key_id IS NULL));

-- Queued jobs: the payload's message text and reply address, sealed; the rest of the payload
-- (platform, delivery id, conversation) stays readable for operators.
ALTER TABLE jobs
    ADD COLUMN sealed bytea,
    ADD COLUMN key_id text,
    ADD CONSTRAINT jobs_sealed_with_key CHECK ((sealed IS NULL) = (key_id IS NULL));

-- Which rows a key still seals: `charla keys retire` asks before it lets a key go. Jobs are
-- purged after days and need no index; these two tables grow for as long as they are kept.
CREATE INDEX turns_key_id ON turns (key_id);
CREATE INDEX api_exchanges_key_id ON api_exchanges (key_id);
