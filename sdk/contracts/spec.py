"""The run spec a user submits (seed 000 `run_spec`) and its steps (`step`).

A run spec is user-authored, so unknown fields are errors (they are usually typos). The DAG rules
that a schema cannot express (unique ids, known dependencies, no cycles, references to ancestors)
live in :func:`fleetforge.validate_run_spec`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from fleetforge.contracts._base import (
    JSON_REF_PATTERN,
    REF_PATTERN,
    SCHEMA_BASE_URI,
    STEP_ID_PATTERN,
    ContractModel,
    Labels,
)
from fleetforge.contracts.protocol import (
    FleetAlertPolicy,
    FleetRetryPolicy,
    FleetRunBudget,
    FleetScorerSpec,
    FleetSecurityPolicy,
    FleetTaskBudget,
    FleetTaskWorkerProfile,
    FleetWorkspaceRequirements,
)

__all__ = [
    "REF_PATTERN",
    "AgentStep",
    "AgentStepTemplate",
    "HumanStep",
    "InputRef",
    "LlmStep",
    "LlmStepTemplate",
    "MapStep",
    "MapStepTemplate",
    "RunSpec",
    "Step",
    "StepDefaults",
    "StepId",
    "ToolStep",
    "ToolStepTemplate",
]

StepId = Annotated[str, Field(min_length=1, max_length=64, pattern=STEP_ID_PATTERN)]
"""A step id: a letter, then letters, digits, `_` or `-` (so it fits in `steps.ID.output`)."""

_REF_RE = re.compile(REF_PATTERN)


class InputRef(ContractModel):
    """A reference to a run input or to a parent step's output."""

    from_: str = Field(
        alias="from",
        pattern=JSON_REF_PATTERN,
        description=(
            "`inputs.NAME` or `steps.ID.output`, optionally followed by `#` and a JSON pointer, "
            "e.g. `steps.plan.output#/outline`."
        ),
    )

    @property
    def input_name(self) -> str | None:
        """The run input named, for `inputs.NAME` references."""
        return _REF_RE.fullmatch(self.from_).group("input")  # type: ignore[union-attr]

    @property
    def step_id(self) -> str | None:
        """The step named, for `steps.ID.output` references."""
        return _REF_RE.fullmatch(self.from_).group("step")  # type: ignore[union-attr]

    @property
    def pointer(self) -> str:
        """The JSON pointer after `#` ('' when absent: the whole value)."""
        return (_REF_RE.fullmatch(self.from_).group("pointer") or "#")[1:]  # type: ignore[union-attr]


_INPUT_VALUE_SCHEMA: dict[str, Any] = {
    "description": 'A literal JSON value, or `{"from": REF}` to take the value from elsewhere.',
    "if": {"type": "object", "required": ["from"]},
    "then": {"$ref": SCHEMA_BASE_URI + "input_ref.json"},
}


def _to_input_value(value: Any) -> Any:
    if isinstance(value, dict) and "from" in value:
        return InputRef.model_validate(value)
    return value


Inputs = Annotated[
    dict[str, Any],
    Field(json_schema_extra={"additionalProperties": _INPUT_VALUE_SCHEMA}),
]


class _Common(ContractModel):
    name: str | None = Field(None, max_length=200, description="Name for people.")
    description: str | None = Field(None, description="What the step does, for people.")
    inputs: Inputs = Field(
        default_factory=dict,
        description='Named inputs: literal values or `{"from": REF}` references.',
    )
    labels: Labels = Field(default_factory=dict, description="Labels of the step's tasks.")

    @field_validator("inputs", mode="after")
    @classmethod
    def _refs(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {k: _to_input_value(v) for k, v in value.items()}


class _Work(_Common):
    worker: FleetTaskWorkerProfile | None = Field(
        None, description="Worker profile the step's tasks need."
    )
    scorer: FleetScorerSpec | None = Field(None, description="How a result is verified.")
    retry: FleetRetryPolicy | None = Field(None, description="Retry policy of the step's tasks.")
    budget: FleetTaskBudget | None = Field(None, description="Budget per attempt.")
    workspace: FleetWorkspaceRequirements | None = Field(
        None, description="Workspace needed before a task starts."
    )


class _Node(ContractModel):
    id: StepId = Field(description="Step id, unique in the run.")
    depends_on: list[StepId] = Field(
        default_factory=list, description="Steps that must complete before this one is ready."
    )
    optional: bool = Field(
        False, description="When true, this step failing for good does not fail the run."
    )


class AgentStepTemplate(_Work):
    """Run a named agent."""

    type: Literal["agent"] = Field("agent", description="Step type.")
    agent: str = Field(min_length=1, description="Agent name a worker knows how to run.")
    prompt: str | None = Field(None, description="Instructions passed to the agent.")


class ToolStepTemplate(_Work):
    """Call one tool with the step's inputs as arguments."""

    type: Literal["tool"] = Field("tool", description="Step type.")
    tool: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$", description="Tool name, e.g. `workspace.read`."
    )


class LlmStepTemplate(_Work):
    """One model call with a prompt."""

    type: Literal["llm"] = Field("llm", description="Step type.")
    prompt: str = Field(min_length=1, description="The prompt; `{name}` is replaced by inputs.")
    system: str | None = Field(None, description="System prompt.")
    model: str | None = Field(None, description="Model name; none = the worker's default.")


class AgentStep(AgentStepTemplate, _Node):
    """Run a named agent."""


class ToolStep(ToolStepTemplate, _Node):
    """Call one tool with the step's inputs as arguments."""


class LlmStep(LlmStepTemplate, _Node):
    """One model call with a prompt."""


class HumanStep(_Common, _Node):
    """Wait for a person to approve (`approve_step`) before the run goes on."""

    type: Literal["human"] = Field("human", description="Step type.")
    prompt: str = Field(min_length=1, description="The question shown to the approver.")
    approvers: list[str] = Field(
        default_factory=list, description="Who may approve; empty = anyone with submit scope."
    )


MapStepTemplate = Annotated[
    AgentStepTemplate | ToolStepTemplate | LlmStepTemplate, Field(discriminator="type")
]
"""The step a map runs once per item: an agent, tool or llm step without id or dependencies."""


class MapStep(_Common, _Node):
    """Run `step` once per item of `over`, in parallel, and gather the outputs in order."""

    type: Literal["map"] = Field("map", description="Step type.")
    over: Any = Field(
        description='The list to fan out over: a literal list or `{"from": REF}`.',
        json_schema_extra=_INPUT_VALUE_SCHEMA,
    )
    step: MapStepTemplate = Field(
        description="The step run per item; it gets inputs `item` and `index` besides its own."
    )
    max_parallel: int | None = Field(None, ge=1, description="Most items in flight at once.")

    @field_validator("over", mode="after")
    @classmethod
    def _over_ref(cls, value: Any) -> Any:
        return _to_input_value(value)


Step = Annotated[AgentStep | ToolStep | LlmStep | HumanStep | MapStep, Field(discriminator="type")]
"""One node of the run's DAG, selected by `type`."""


class StepDefaults(ContractModel):
    """Values every agent, tool and llm step gets unless it sets its own."""

    worker: FleetTaskWorkerProfile | None = Field(None, description="Default worker profile.")
    retry: FleetRetryPolicy | None = Field(None, description="Default retry policy.")
    budget: FleetTaskBudget | None = Field(None, description="Default budget per attempt.")


class RunSpec(ContractModel):
    """A run submission: a DAG of steps with inputs, a positive seed, labels and breakpoints."""

    name: str = Field(min_length=1, max_length=200, description="Run name.")
    description: str | None = Field(None, description="What the run is for, for people.")
    seed: Annotated[int, Field(strict=True, ge=1)] = Field(
        description=(
            "Required positive integer. Handed to every task; every random choice of the engine "
            "derives from (seed, step id, attempt)."
        ),
    )
    labels: Labels = Field(default_factory=dict, description="Labels for filtering runs.")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Run inputs, referenced as `inputs.NAME`."
    )
    breakpoints: list[StepId] = Field(
        default_factory=list, description="Steps to pause before until `resume_run`."
    )
    steps: list[Step] = Field(min_length=1, description="The steps of the DAG.")
    defaults: StepDefaults | None = Field(None, description="Defaults for every work step.")
    security: FleetSecurityPolicy | None = Field(None, description="Security policy of the run.")
    alerts: FleetAlertPolicy | None = Field(None, description="Alert policy of the run.")
    budget: FleetRunBudget | None = Field(
        None, description="Budget of the whole run (every step's per-attempt budget still holds)."
    )

    model_config = ContractModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "hello-fleet",
                    "seed": 42,
                    "labels": {"team": "demo"},
                    "inputs": {"topic": "event sourcing"},
                    "breakpoints": ["review"],
                    "steps": [
                        {
                            "id": "plan",
                            "type": "agent",
                            "agent": "planner",
                            "inputs": {"topic": {"from": "inputs.topic"}},
                            "worker": {
                                "role": "planner",
                                "tools": ["workspace.*"],
                                "min_trust": "internal",
                            },
                            "scorer": {
                                "kind": "json_schema",
                                "schema": {"type": "object", "required": ["outline"]},
                            },
                            "retry": {
                                "max_attempts": 3,
                                "backoff_s": 1.0,
                                "retry_on": ["transient", "timeout"],
                            },
                            "budget": {"max_tokens": 20000, "max_cost_usd": 0.5, "max_wall_s": 120},
                        },
                        {
                            "id": "write",
                            "type": "agent",
                            "agent": "writer",
                            "depends_on": ["plan"],
                            "inputs": {
                                "outline": {"from": "steps.plan.output#/outline"},
                                "style": "short",
                            },
                        },
                        {
                            "id": "each",
                            "type": "map",
                            "over": {"from": "steps.plan.output#/sections"},
                            "step": {"type": "tool", "tool": "workspace.read"},
                            "depends_on": ["plan"],
                        },
                        {
                            "id": "review",
                            "type": "human",
                            "prompt": "Publish?",
                            "depends_on": ["write"],
                            "optional": False,
                        },
                    ],
                }
            ]
        }
    }

    def step(self, step_id: str) -> AgentStep | ToolStep | LlmStep | HumanStep | MapStep:
        """The step with this id (``KeyError`` when absent)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)
