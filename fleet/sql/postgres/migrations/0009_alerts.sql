-- 0009: the alert outbox (issue 23). One row per alert delivery (alert_fired), kept by the
-- (IF NOT EXISTS: a store taken back to an earlier version by hand runs it again unharmed)
-- alerts projection from alert_fired / alert_delivered / alert_failed, so replay rebuilds it.
-- alert_claims is not a projection: a dispatcher's short claim on a delivery it is making, so
-- two dispatchers do not send the same one at once (a lost claim only costs a duplicate, which
-- the receiver drops by its webhook-id).
CREATE TABLE IF NOT EXISTS alerts (
    alert_id text PRIMARY KEY,
    policy text NOT NULL,
    event_class text NOT NULL,
    subject text NOT NULL,
    run_id text,
    channel text NOT NULL,
    endpoint jsonb NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL,  -- pending, delivered, dead
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    next_attempt_at timestamptz,
    last_error text,
    escalation integer NOT NULL,
    escalates text,
    escalate_after_s double precision,
    escalated_by text,
    fired_at timestamptz NOT NULL,
    delivered_at timestamptz
);
CREATE INDEX IF NOT EXISTS alerts_due ON alerts (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS alerts_by_subject ON alerts (policy, subject, fired_at);

CREATE TABLE IF NOT EXISTS alert_claims (
    alert_id text PRIMARY KEY,
    owner text NOT NULL,
    claimed_until timestamptz NOT NULL
);
