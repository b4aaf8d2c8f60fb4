"""Helpers for testing code that uses FleetForge (and for FleetForge's own tests).

- :mod:`fleetforge.testing.postgres` — start a throwaway PostgreSQL server for a test session.

Importing ``fleetforge`` does not import this package.
"""
