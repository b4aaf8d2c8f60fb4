"""The fleet's client: one API over the engine in process or over MCP (stdio or HTTP)."""

from fleetforge.client._client import FleetClient
from fleetforge.client._session import FleetClientSession
from fleetforge.client._sync import SyncFleetClient
from fleetforge.client._transports import LocalTransport, McpTransport, Transport
from fleetforge.operations.results import RunList, WorkerList

__all__ = [
    "FleetClient",
    "FleetClientSession",
    "LocalTransport",
    "McpTransport",
    "RunList",
    "SyncFleetClient",
    "Transport",
    "WorkerList",
]
