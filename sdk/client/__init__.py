"""Clients of a fleet over MCP (the SDK's ``FleetClient`` builds on these)."""

from fleetforge.client._client import FleetClient, RunList, Transport
from fleetforge.client._session import FleetClientSession
from fleetforge.client._sync import SyncFleetClient

__all__ = ["FleetClient", "FleetClientSession", "RunList", "SyncFleetClient", "Transport"]
