-- 0010: authorization (issue 21). A bearer token carries the trust level an admin gave it and an
-- optional worker public key; a task needs a worker with a registered key when its run requires
-- signed receipts; each lease's capability token (a Biscuit) is kept with its task; revoked
-- capability ids; the fleet's capability root key.

ALTER TABLE tokens ADD COLUMN trust_level text NOT NULL DEFAULT 'sandboxed';
ALTER TABLE tokens ADD COLUMN public_key text;

ALTER TABLE tasks ADD COLUMN needs_key integer NOT NULL DEFAULT 0;
UPDATE tasks SET needs_key = 1
WHERE (spec -> 'security' ->> 'require_signed_receipts') = 'true';
UPDATE tasks SET min_trust = greatest(min_trust, CASE spec -> 'security' ->> 'min_trust'
    WHEN 'sandboxed' THEN 1 WHEN 'internal' THEN 2 WHEN 'privileged' THEN 3 ELSE 0 END);

CREATE TABLE task_capabilities (
    task_id text PRIMARY KEY,
    run_id text NOT NULL,
    fencing_token bigint NOT NULL,
    capability_id text NOT NULL,
    token text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX task_capabilities_by_id ON task_capabilities (capability_id);

CREATE TABLE revoked_capabilities (
    capability_id text PRIMARY KEY,
    revoked_at timestamptz NOT NULL,
    revoked_by text,
    reason text NOT NULL
);

CREATE TABLE trust_keys (
    name text PRIMARY KEY,
    private_key text NOT NULL,
    public_key text NOT NULL,
    created_at timestamptz NOT NULL
);
