"""Training jobs, one module per responsibility.

- `records`: what a job is (the `Job` record, whose fields are the table's columns,
  its states and outcomes, the errors callers see);
- `store`: persistence of those records (no decisions): SQLite, or `postgres_store` when
  DATABASE_URL is set (its schema: `pg_migrations`);
- `lifecycle`: the one writer of job state: every status and progress change goes through it;
- `runner`: admission (idempotency, queue limit) and dispatch, MAX_CONCURRENT_JOBS at a time;
- `executors`: where a dispatched job trains (worker processes or the dispatcher's thread).
"""
