-- 0010: authorization (issue 21). A bearer token carries the trust level an admin gave it and an
-- optional worker public key; a task needs a worker with a registered key when its run requires
-- signed receipts; each lease's capability token (a Biscuit) is kept with its task; revoked
-- capability ids; the fleet's capability root key.

ALTER TABLE tokens ADD COLUMN trust_level TEXT NOT NULL DEFAULT 'sandboxed';
ALTER TABLE tokens ADD COLUMN public_key TEXT;

ALTER TABLE tasks ADD COLUMN needs_key INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET needs_key = 1
WHERE json_extract(spec, '$.security.require_signed_receipts') = 1;
UPDATE tasks SET min_trust = max(min_trust, CASE json_extract(spec, '$.security.min_trust')
    WHEN 'sandboxed' THEN 1 WHEN 'internal' THEN 2 WHEN 'privileged' THEN 3 ELSE 0 END);

CREATE TABLE task_capabilities (
    task_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    fencing_token INTEGER NOT NULL,
    capability_id TEXT NOT NULL,
    token TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX task_capabilities_by_id ON task_capabilities (capability_id);

CREATE TABLE revoked_capabilities (
    capability_id TEXT PRIMARY KEY,
    revoked_at TEXT NOT NULL,
    revoked_by TEXT,
    reason TEXT NOT NULL
);

CREATE TABLE trust_keys (
    name TEXT PRIMARY KEY,
    private_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at TEXT NOT NULL
);
