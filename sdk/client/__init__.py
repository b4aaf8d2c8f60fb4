"""Clients of a fleet over MCP (the SDK's ``FleetClient`` builds on these)."""

from fleetforge.client._session import FleetClientSession

__all__ = ["FleetClientSession"]
