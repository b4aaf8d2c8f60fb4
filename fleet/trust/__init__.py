"""The trust plane: capability tokens and policy (authorization), keys and signed receipts
(attestation). Import the modules themselves; this package exports nothing."""
