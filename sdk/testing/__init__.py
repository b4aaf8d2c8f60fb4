"""Helpers for testing code that uses FleetForge (and for FleetForge's own tests).

- :func:`in_memory_fleet` — a ``FleetClient`` over an in-memory store;
- :func:`run_fake_worker` — work a fleet's tasks with canned outputs;
- :func:`assert_envelopes` / :func:`envelope_kinds` — check an adapter's envelope sequence;
- :mod:`fleetforge.testing.postgres` — start a throwaway PostgreSQL server for a test session.

Importing ``fleetforge`` does not import this package.
"""

from fleetforge.testing.fleet import (
    assert_envelopes,
    envelope_kinds,
    in_memory_fleet,
    run_fake_worker,
)

__all__ = ["assert_envelopes", "envelope_kinds", "in_memory_fleet", "run_fake_worker"]
