"""FleetForge: a control plane for fleets of AI agents.

``import fleetforge`` is light: the error tree loads at once; the contracts (pydantic models),
the schemas and the run-spec validator load on first use of a name from them. No agent
framework, MCP server or database driver is imported.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from fleetforge.errors import (
    AdapterStateError,
    AlreadyCompletedError,
    AuthError,
    ConflictError,
    ContractError,
    ErrorDetail,
    FleetForgeError,
    ForbiddenError,
    InternalError,
    LeaseLostError,
    NotFoundError,
    RunCancelledError,
    SchemaVersionError,
    StoreError,
    UnavailableError,
    UsageError,
)

if TYPE_CHECKING:
    from fleetforge import contracts, errors, schemas
    from fleetforge.contracts import (
        FLEET_PROTOCOL_VERSION,
        AgentRunEnvelope,
        FleetSecretRef,
        Run,
        RunEvent,
        RunSpec,
    )
    from fleetforge.validation import validate_run_spec

__version__ = "0.1.0"

_LAZY = {
    "contracts": ("fleetforge.contracts", None),
    "errors": ("fleetforge.errors", None),
    "schemas": ("fleetforge.schemas", None),
    "FLEET_PROTOCOL_VERSION": ("fleetforge.contracts", "FLEET_PROTOCOL_VERSION"),
    "AgentRunEnvelope": ("fleetforge.contracts", "AgentRunEnvelope"),
    "FleetSecretRef": ("fleetforge.contracts", "FleetSecretRef"),
    "Run": ("fleetforge.contracts", "Run"),
    "RunEvent": ("fleetforge.contracts", "RunEvent"),
    "RunSpec": ("fleetforge.contracts", "RunSpec"),
    "validate_run_spec": ("fleetforge.validation", "validate_run_spec"),
}


def __getattr__(name: str) -> Any:
    """Load the contracts, schemas and validator on first use (PEP 562)."""
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'fleetforge' has no attribute {name!r}") from None
    module = import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


__all__ = [
    "FLEET_PROTOCOL_VERSION",
    "AdapterStateError",
    "AgentRunEnvelope",
    "AlreadyCompletedError",
    "AuthError",
    "ConflictError",
    "ContractError",
    "ErrorDetail",
    "FleetForgeError",
    "FleetSecretRef",
    "ForbiddenError",
    "InternalError",
    "LeaseLostError",
    "NotFoundError",
    "Run",
    "RunCancelledError",
    "RunEvent",
    "RunSpec",
    "SchemaVersionError",
    "StoreError",
    "UnavailableError",
    "UsageError",
    "__version__",
    "contracts",
    "errors",
    "schemas",
    "validate_run_spec",
]
