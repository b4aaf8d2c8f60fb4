-- 0005: who may act. Bearer tokens live in the store (token_created / token_revoked events;
-- only their SHA-256), a lease remembers the unbound token that took it (`lease_credential`),
-- and a receipt id is unique within its task, not across the store.

CREATE TABLE tokens (
    token_id text PRIMARY KEY,
    name text NOT NULL,
    sha256 text NOT NULL UNIQUE,
    scopes jsonb NOT NULL,
    worker_id text,
    created_at timestamptz NOT NULL,
    created_by text,
    revoked_at timestamptz
);
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;

ALTER TABLE tasks ADD COLUMN lease_credential text;

ALTER TABLE receipts DROP CONSTRAINT receipts_pkey;
ALTER TABLE receipts ADD CONSTRAINT receipts_pkey PRIMARY KEY (run_id, task_id, receipt_id);
DROP INDEX receipts_by_id;
CREATE INDEX receipts_by_position ON receipts (run_id, position);
