"""What every framework adapter shares: lazy imports with an install hint, and the run protocol.

A framework adapter drives one framework run for one task attempt and reports it through an
:class:`~fleetforge.adapter.AgentRunAdapter`: :meth:`FrameworkAdapter.run` starts the envelope
sequence (unless the Worker already did), observes the framework through its public lifecycle
signals, and ends with ``complete`` (output and usage) or ``error`` (the exception's failure
kind). :meth:`FrameworkAdapter.as_handler` gives a handler for :class:`~fleetforge.worker.Worker`.
"""

from __future__ import annotations

import importlib
import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
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

__all__ = ["FrameworkAdapter", "PerTask", "require"]


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


class PerTask:
    """What a framework adapter runs for each task: one object, or a factory of them.

    Framework objects carry state from run to run (an AgentChat agent keeps its conversation, a
    Crew its task outputs) and cannot run twice at once. Given a factory (a function of no
    arguments, sync or async), each task gets its own object, and tasks run concurrently. Given
    an object, tasks take turns on it, and before every task after its first here ``reset``
    (when given) clears what the previous task left, so tasks never see each other's data.
    """

    def __init__(
        self,
        subject: Any,
        *,
        is_object: Callable[[Any], bool],
        reset: Callable[[Any], Awaitable[None]] | None = None,
        what: str,
    ) -> None:
        if not is_object(subject) and not callable(subject):
            raise UsageError(f"expected {what}, or a function that builds one; got {subject!r}")
        self.subject = subject
        self._factory = None if is_object(subject) else subject
        self._reset = reset
        self._used = False
        self._turn: anyio.Lock | None = None

    @asynccontextmanager
    async def use(self) -> AsyncIterator[Any]:
        """The object for one task: a new one from the factory, or the one object, reset."""
        if self._factory is not None:
            built = self._factory()
            yield (await built) if inspect.isawaitable(built) else built
            return
        if self._turn is None:
            self._turn = anyio.Lock()
        async with self._turn:
            if self._used and self._reset is not None:
                await self._reset(self.subject)
            self._used = True
            yield self.subject


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
