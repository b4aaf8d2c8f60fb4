"""The trust plane: the fleet's signing keys, signed receipts (in-toto statements in DSSE
envelopes), run bundles and their offline verification, and the run's AIBOM.

Nothing here is imported by ``import fleetforge``; the engine imports :mod:`.keys` and
:mod:`.attest` when it signs its first receipt.
"""
