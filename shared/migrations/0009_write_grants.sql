-- Grants to write, not only to read: a program with the documents scope adds to or deletes
-- from a collection only where the operator granted it that (charla grant C api:CLIENT
-- --write). Writing implies reading. Existing grants stay read-only, so after this migration
-- no API client can write anywhere until the operator says so.
ALTER TABLE collection_grants ADD COLUMN may_write boolean NOT NULL DEFAULT false;
