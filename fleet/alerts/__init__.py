"""Alerts that reach people (issue 23): policies (a run's own, and the fleet's in
``$FLEETFORGE_HOME/alerts.toml``) turn events into ``alert_fired`` events, an outbox written in
the same transaction (:mod:`.firing`); a dispatcher delivers them at least once, with backoff,
escalation and dead letters (:mod:`.dispatcher`) over webhooks signed as Standard Webhooks,
apprise URLs (Slack, email, PagerDuty) or the log (:mod:`.channels`). docs/alerts.md tells it
all."""
