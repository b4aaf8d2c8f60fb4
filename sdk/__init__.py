"""FleetForge: a control plane for fleets of AI agents.

``import fleetforge`` is light: it loads the contracts (pydantic models), the error tree and the
run-spec validator, and no agent framework, MCP server or database driver.
"""

from fleetforge import contracts, errors, schemas
from fleetforge.contracts import (
    FLEET_PROTOCOL_VERSION,
    AgentRunEnvelope,
    FleetSecretRef,
    Run,
    RunEvent,
    RunSpec,
)
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
from fleetforge.validation import validate_run_spec

__version__ = "0.1.0"

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
