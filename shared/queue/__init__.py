"""The queue wing: how a platform's delivery becomes a job the worker runs, once.

- ``contract``: what a queue promises (:class:`JobQueue` for the webhooks, :class:`Settles` and
  :class:`WorkQueue` for the worker, :class:`Leases`).
- ``jobs``: what a job is, and how its payload's private fields are sealed.
- ``dedup``: the one statement that records each delivery and drops a redelivery, used by both
  queues; a caller's hooks (Slack's thread marks, functions/slack/threads.py) run in it.
- ``postgres``: the local queue (:class:`PgQueue`), webhooks and worker on one table.
- ``sqs``: the queue on AWS (:class:`SqsQueue`, :class:`SqsBatch`); ``dead_letters``: its
  dead-letter queue, read and moved back by operators.
- ``outbox``: every post a job makes, recorded first, so that a job run again posts nothing twice.

A delivery, from a webhook to the line that drops a redelivery: ``functions/<platform>/app.py``
→ ``Webhooks.accept`` (functions/webhooks.py) → ``PgQueue.enqueue`` → ``dedup.Deliveries.accept``.
On SQS the worker function drops it: ``functions/worker/lambda_handler.py`` →
``SqsQueue.first_deliveries`` → ``dedup.Deliveries.accept``.

This package imports nothing itself. Only ``postgres`` and ``outbox`` need psycopg: a webhook
function on SQS loads the rest without it (docs/benchmarks.md, "Cold start on Lambda").
"""
