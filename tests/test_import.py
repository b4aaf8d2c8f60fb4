"""`import fleetforge` stays light, and the public API is what we mean it to be."""

from __future__ import annotations

import json
import subprocess
import sys

import fleetforge

FORBIDDEN = (
    "langgraph", "langchain", "langchain_core", "autogen_agentchat", "autogen_core", "autogen_ext",
    "crewai", "mcp", "psycopg", "psycopg_pool", "asyncpg", "sqlalchemy", "uvicorn", "starlette",
    "opentelemetry.sdk", "typer", "rich",
)  # fmt: skip


def test_import_loads_no_framework_server_or_driver() -> None:
    code = "import sys, json, fleetforge; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    offenders = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert offenders == []


PUBLIC = {
    "FLEET_PROTOCOL_VERSION", "AdapterStateError", "AgentRunEnvelope", "AlreadyCompletedError",
    "AuthError", "ConflictError", "ContractError", "ErrorDetail", "FleetForgeError",
    "FleetSecretRef", "ForbiddenError", "InternalError", "LeaseLostError", "NotFoundError", "Run",
    "RunCancelledError", "RunEvent", "RunSpec", "SchemaVersionError", "StoreError",
    "UnavailableError", "UsageError", "__version__", "contracts", "errors", "schemas",
    "validate_run_spec",
}  # fmt: skip


def test_public_names() -> None:
    assert set(fleetforge.__all__) == PUBLIC
    for name in fleetforge.__all__:
        assert hasattr(fleetforge, name), name
    for module in (fleetforge.contracts, fleetforge.errors, fleetforge.schemas):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
