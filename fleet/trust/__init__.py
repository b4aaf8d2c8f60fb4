"""The trust plane: the fleet's signing keys, signed receipts (in-toto statements in DSSE
envelopes), run bundles and their offline verification, the run's AIBOM (attestation); capability
tokens, security and Cedar policy, blocked reasons (authorization).

Nothing here is imported by ``import fleetforge``; the engine imports what it needs when it
first signs a receipt or mints a token. Import the modules themselves; this package exports
nothing.
"""
