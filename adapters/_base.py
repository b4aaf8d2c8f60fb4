"""What every framework adapter shares: lazy imports with an install hint, and the run protocol.

A framework adapter drives one framework run for one task attempt and reports it through an
:class:`~fleetforge.adapter.AgentRunAdapter`: :meth:`FrameworkAdapter.run` starts the envelope
sequence (unless the Worker already did), observes the framework through its public lifecycle
signals, and ends with ``complete`` (output and usage) or ``error`` (the exception's failure
kind). :meth:`FrameworkAdapter.as_handler` gives a handler for :class:`~fleetforge.worker.Worker`.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any, ClassVar

import anyio

from fleetforge import __version__
from fleetforge.adapter import AgentRunAdapter, to_jsonable
from fleetforge.contracts import FleetUsage
from fleetforge.contracts.envelope import AdapterInfo
from fleetforge.errors import UsageError

__all__ = ["FrameworkAdapter", "require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or explain which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(
            f"the {extra} adapter needs {module.split('.')[0]}: "
            f'pip install "fleetforge[{extra}]" ({exc})'
        ) from None


def tool_arguments(raw: Any) -> Any:
    """Tool arguments as JSON data: frameworks give them as a JSON string or as a dict."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return to_jsonable(raw)


def add_usage(total: FleetUsage, **counts: Any) -> FleetUsage:
    """``total`` plus token counts (None counts are skipped)."""
    values = total.model_dump()
    for key, value in counts.items():
        if value is None:
            continue
        if key in ("input_tokens", "output_tokens", "total_tokens"):
            values[key] = int(values[key]) + int(value)
        elif key == "cost_usd":
            values[key] = float(values[key] or 0) + float(value)
        elif key == "model" and value:
            values[key] = str(value)
    if not counts.get("total_tokens") and ("input_tokens" in counts or "output_tokens" in counts):
        values["total_tokens"] = max(
            values["total_tokens"], values["input_tokens"] + values["output_tokens"]
        )
    return FleetUsage.model_validate(values)


@cache
def _adapter_info(framework: str, extra: str) -> AdapterInfo:
    distribution = "autogen-agentchat" if extra == "autogen" else extra
    try:
        framework_version = version(distribution)
    except PackageNotFoundError:
        framework_version = "unknown"
    return AdapterInfo(name=framework, version=f"{__version__}+{framework}-{framework_version}")


class FrameworkAdapter(ABC):
    """Base of the LangGraph, AutoGen and CrewAI adapters."""

    framework: ClassVar[str]
    extra: ClassVar[str]

    @abstractmethod
    async def _drive(
        self, adapter: AgentRunAdapter, inputs: Mapping[str, Any]
    ) -> tuple[Any, FleetUsage]:
        """Run the framework, emitting as it goes; return (output, usage)."""

    async def run(
        self,
        adapter: AgentRunAdapter,
        inputs: Mapping[str, Any] | None = None,
        *,
        complete: bool = True,
    ) -> Any:
        """Run once for ``adapter``'s task: start (if needed), emits, then complete or error.

        Returns the output; re-raises the framework's exception after the error envelope. With
        ``complete=False`` the output is returned without the ``complete`` envelope, for a
        handler that adds to it (the Worker completes with the handler's return value).
        """
        given = dict(adapter.context.inputs if inputs is None else inputs)
        if not adapter.started:
            adapter.info = self.adapter_info()
            adapter.start(given)
        try:
            output, usage = await self._drive(adapter, given)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            if not adapter.finished:
                adapter.error(exc)
            raise
        if not complete:
            return output
        if not adapter.finished:
            adapter.complete(output, usage)
        return adapter.output

    def adapter_info(self) -> AdapterInfo:
        """The envelopes' ``adapter``: the framework's name, FleetForge's and its version."""
        return _adapter_info(self.framework, self.extra)

    def as_handler(self) -> Callable[[Any], Awaitable[Any]]:
        """A :class:`~fleetforge.worker.Worker` handler running this adapter per task (the
        Worker names its envelopes after the framework)."""

        async def handle(task: Any) -> Any:
            return await self.run(task.adapter, task.inputs)

        handle.__name__ = f"{self.framework}_handler"
        handle.fleetforge_adapter = self.adapter_info()  # type: ignore[attr-defined]
        return handle
