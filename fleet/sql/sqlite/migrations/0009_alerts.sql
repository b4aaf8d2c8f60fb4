-- 0009: the alert outbox (issue 23). One row per alert delivery (alert_fired), kept by the
-- (IF NOT EXISTS: a store taken back to an earlier version by hand runs it again unharmed)
-- alerts projection from alert_fired / alert_delivered / alert_failed, so replay rebuilds it.
-- alert_claims is not a projection: a dispatcher's short claim on a delivery it is making, so
-- two dispatchers do not send the same one at once (a lost claim only costs a duplicate, which
-- the receiver drops by its webhook-id).
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    event_class TEXT NOT NULL,
    subject TEXT NOT NULL,
    run_id TEXT,
    channel TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,  -- pending, delivered, dead
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    next_attempt_at TEXT,
    last_error TEXT,
    escalation INTEGER NOT NULL,
    escalates TEXT,
    escalate_after_s REAL,
    escalated_by TEXT,
    fired_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS alerts_due ON alerts (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS alerts_by_subject ON alerts (policy, subject, fired_at);

CREATE TABLE IF NOT EXISTS alert_claims (
    alert_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    claimed_until TEXT NOT NULL
);
