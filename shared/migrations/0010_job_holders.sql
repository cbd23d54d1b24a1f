-- Which worker holds a running job: a key of its own, under which the worker holds a
-- session-level advisory lock for as long as it lives (shared/queue/postgres.py). A worker that
-- dies loses its database session, and with it the lock: its jobs are taken again at once, not
-- when their lease runs out. The lease still frees the jobs of a worker that hangs alive.
ALTER TABLE jobs ADD COLUMN leased_by bigint;
