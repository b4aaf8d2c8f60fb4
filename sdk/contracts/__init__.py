"""Pydantic models of every FleetForge contract; the JSON Schemas in ``fleetforge.schemas``
mirror them and a test proves the two agree.

- :mod:`~fleetforge.contracts.spec` — the run spec and its steps (seed 000)
- :mod:`~fleetforge.contracts.run` — the run record; :mod:`~fleetforge.contracts.artifact`
- :mod:`~fleetforge.contracts.envelope` — the adapter envelope (`agent_run`)
- :mod:`~fleetforge.contracts.events` — the run event catalogue (`run_event`)
- :mod:`~fleetforge.contracts.protocol` — the fleet protocol types (seed 001)

The names load on first use (PEP 562): importing one submodule (say the enumerations, for a
command-line option) does not build every model.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetforge.contracts._base import FLEET_PROTOCOL_VERSION, ContractModel, ProtocolModel
    from fleetforge.contracts.artifact import Artifact, artifact_path
    from fleetforge.contracts.envelope import (
        AdapterInfo,
        AgentRunEnvelope,
        AnyAgentRunEnvelope,
        CheckpointEnvelope,
        CompleteEnvelope,
        EmitEnvelope,
        EmitEvent,
        ErrorEnvelope,
        StartEnvelope,
        parse_envelope,
    )
    from fleetforge.contracts.events import EVENT_TYPES, AnyRunEvent, RunEvent, parse_event
    from fleetforge.contracts.protocol import (
        FleetAlertChannel,
        FleetAlertEndpoint,
        FleetAlertEventClass,
        FleetAlertPolicy,
        FleetArtifactKind,
        FleetArtifactRef,
        FleetCapabilityGrant,
        FleetEnvironmentRequirements,
        FleetHostSpec,
        FleetInboxEntry,
        FleetInboxStatus,
        FleetLease,
        FleetReceipt,
        FleetReceiptStatus,
        FleetResume,
        FleetRetryPolicy,
        FleetRun,
        FleetRunStatus,
        FleetScore,
        FleetScorerSpec,
        FleetSecretRef,
        FleetSecurityPolicy,
        FleetTaskBudget,
        FleetTaskFailureKind,
        FleetTaskResult,
        FleetTaskSpec,
        FleetTaskWorkerProfile,
        FleetTrustLevel,
        FleetUsage,
        FleetWorkerAuth,
        FleetWorkerEvent,
        FleetWorkerEventPayload,
        FleetWorkerSpec,
        FleetWorkerStatus,
        FleetWorkspaceRequirements,
        TraceContext,
    )
    from fleetforge.contracts.run import InputRequest, Run, StepRecord, StepStatus
    from fleetforge.contracts.spec import (
        AgentStep,
        HumanStep,
        InputRef,
        LlmStep,
        MapStep,
        RunSpec,
        Step,
        ToolStep,
    )

_HOME: dict[str, str] = {
    "AdapterInfo": "fleetforge.contracts.envelope",
    "AgentRunEnvelope": "fleetforge.contracts.envelope",
    "AgentStep": "fleetforge.contracts.spec",
    "AnyAgentRunEnvelope": "fleetforge.contracts.envelope",
    "AnyRunEvent": "fleetforge.contracts.events",
    "Artifact": "fleetforge.contracts.artifact",
    "CheckpointEnvelope": "fleetforge.contracts.envelope",
    "CompleteEnvelope": "fleetforge.contracts.envelope",
    "ContractModel": "fleetforge.contracts._base",
    "EVENT_TYPES": "fleetforge.contracts.events",
    "EmitEnvelope": "fleetforge.contracts.envelope",
    "EmitEvent": "fleetforge.contracts.envelope",
    "ErrorEnvelope": "fleetforge.contracts.envelope",
    "FLEET_PROTOCOL_VERSION": "fleetforge.contracts._base",
    "FleetAlertChannel": "fleetforge.contracts.enums",
    "FleetAlertEndpoint": "fleetforge.contracts.protocol",
    "FleetAlertEventClass": "fleetforge.contracts.enums",
    "FleetAlertPolicy": "fleetforge.contracts.protocol",
    "FleetArtifactKind": "fleetforge.contracts.enums",
    "FleetArtifactRef": "fleetforge.contracts.protocol",
    "FleetCapabilityGrant": "fleetforge.contracts.protocol",
    "FleetEnvironmentRequirements": "fleetforge.contracts.protocol",
    "FleetHostSpec": "fleetforge.contracts.protocol",
    "FleetInboxEntry": "fleetforge.contracts.protocol",
    "FleetInboxStatus": "fleetforge.contracts.enums",
    "FleetLease": "fleetforge.contracts.protocol",
    "FleetReceipt": "fleetforge.contracts.protocol",
    "FleetReceiptStatus": "fleetforge.contracts.enums",
    "FleetResume": "fleetforge.contracts.protocol",
    "FleetRetryPolicy": "fleetforge.contracts.protocol",
    "FleetRun": "fleetforge.contracts.protocol",
    "FleetRunStatus": "fleetforge.contracts.enums",
    "FleetScore": "fleetforge.contracts.protocol",
    "FleetScorerSpec": "fleetforge.contracts.protocol",
    "FleetSecretRef": "fleetforge.contracts.protocol",
    "FleetSecurityPolicy": "fleetforge.contracts.protocol",
    "FleetTaskBudget": "fleetforge.contracts.protocol",
    "FleetTaskFailureKind": "fleetforge.contracts.enums",
    "FleetTaskResult": "fleetforge.contracts.protocol",
    "FleetTaskSpec": "fleetforge.contracts.protocol",
    "FleetTaskWorkerProfile": "fleetforge.contracts.protocol",
    "FleetTrustLevel": "fleetforge.contracts.enums",
    "FleetUsage": "fleetforge.contracts.protocol",
    "FleetWorkerAuth": "fleetforge.contracts.protocol",
    "FleetWorkerEvent": "fleetforge.contracts.protocol",
    "FleetWorkerEventPayload": "fleetforge.contracts.protocol",
    "FleetWorkerSpec": "fleetforge.contracts.protocol",
    "FleetWorkerStatus": "fleetforge.contracts.enums",
    "FleetWorkspaceRequirements": "fleetforge.contracts.protocol",
    "HumanStep": "fleetforge.contracts.spec",
    "InputRef": "fleetforge.contracts.spec",
    "InputRequest": "fleetforge.contracts.run",
    "LlmStep": "fleetforge.contracts.spec",
    "MapStep": "fleetforge.contracts.spec",
    "ProtocolModel": "fleetforge.contracts._base",
    "Run": "fleetforge.contracts.run",
    "RunEvent": "fleetforge.contracts.events",
    "RunSpec": "fleetforge.contracts.spec",
    "StartEnvelope": "fleetforge.contracts.envelope",
    "Step": "fleetforge.contracts.spec",
    "StepRecord": "fleetforge.contracts.run",
    "StepStatus": "fleetforge.contracts.run",
    "ToolStep": "fleetforge.contracts.spec",
    "TraceContext": "fleetforge.contracts.protocol",
    "artifact_path": "fleetforge.contracts.artifact",
    "parse_envelope": "fleetforge.contracts.envelope",
    "parse_event": "fleetforge.contracts.events",
}


def __getattr__(name: str) -> Any:
    try:
        module = _HOME[name]
    except KeyError:
        raise AttributeError(f"module 'fleetforge.contracts' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "EVENT_TYPES",
    "FLEET_PROTOCOL_VERSION",
    "AdapterInfo",
    "AgentRunEnvelope",
    "AgentStep",
    "AnyAgentRunEnvelope",
    "AnyRunEvent",
    "Artifact",
    "CheckpointEnvelope",
    "CompleteEnvelope",
    "ContractModel",
    "EmitEnvelope",
    "EmitEvent",
    "ErrorEnvelope",
    "FleetAlertChannel",
    "FleetAlertEndpoint",
    "FleetAlertEventClass",
    "FleetAlertPolicy",
    "FleetArtifactKind",
    "FleetArtifactRef",
    "FleetCapabilityGrant",
    "FleetEnvironmentRequirements",
    "FleetHostSpec",
    "FleetInboxEntry",
    "FleetInboxStatus",
    "FleetLease",
    "FleetReceipt",
    "FleetReceiptStatus",
    "FleetResume",
    "FleetRetryPolicy",
    "FleetRun",
    "FleetRunStatus",
    "FleetScore",
    "FleetScorerSpec",
    "FleetSecretRef",
    "FleetSecurityPolicy",
    "FleetTaskBudget",
    "FleetTaskFailureKind",
    "FleetTaskResult",
    "FleetTaskSpec",
    "FleetTaskWorkerProfile",
    "FleetTrustLevel",
    "FleetUsage",
    "FleetWorkerAuth",
    "FleetWorkerEvent",
    "FleetWorkerEventPayload",
    "FleetWorkerSpec",
    "FleetWorkerStatus",
    "FleetWorkspaceRequirements",
    "HumanStep",
    "InputRef",
    "InputRequest",
    "LlmStep",
    "MapStep",
    "ProtocolModel",
    "Run",
    "RunEvent",
    "RunSpec",
    "StartEnvelope",
    "Step",
    "StepRecord",
    "StepStatus",
    "ToolStep",
    "TraceContext",
    "artifact_path",
    "parse_envelope",
    "parse_event",
]
