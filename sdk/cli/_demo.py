"""``fleetforge demo``: Hello Fleet on the embedded store, offline, with live progress."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.table import Table
from rich.text import Text

from fleetforge.cli._console import err, out, text
from fleetforge.cli._context import globals_of
from fleetforge.cli._errors import reporting
from fleetforge.errors import UsageError
from fleetforge.redaction import mask_url

__all__ = ["demo"]


def _spans() -> Any:
    """An in-memory span exporter when the OpenTelemetry SDK is installed (and no provider
    is set yet), so the summary can count the spans the run recorded."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        return None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def demo(
    ctx: typer.Context,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the run (default: the spec's, 42).")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Topic of the article.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Use a real OpenAI-compatible model instead of the scripted ones (needs "
            "OPENAI_API_KEY, or OPENAI_BASE_URL for a server speaking the OpenAI API)."
        ),
    ] = None,
) -> None:
    """Run Hello Fleet: planner (LangGraph), researcher (AutoGen), writer (CrewAI), reviewer.

    It needs the langgraph, autogen and crewai extras (make install has them); without them
    it stops before submitting anything and says what to install (exit 2).
    """
    from fleetforge.client import FleetClient
    from fleetforge.demo.hello_fleet import RealModel, load_spec, missing_extras, run_hello_fleet

    g = globals_of(ctx)
    with reporting(out, err):
        missing = missing_extras()
        if missing:
            raise UsageError(
                f"the demo needs the {', '.join(missing)} extra{'s' if len(missing) > 1 else ''}"
                f': in the FleetForge checkout, pip install -e ".[{",".join(missing)}]" '
                "(make install installs every extra)"
            )
        real = RealModel.from_env(model) if model else None
    for noisy in ("autogen_core", "autogen_ext", "autogen_agentchat", "crewai"):  # fake models
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("FLEETFORGE_WORKSPACE", str(g.artifacts_root.parent / "workspace"))
    exporter = _spans()
    spec = load_spec()
    if seed is not None:
        spec["seed"] = seed
    if topic:
        spec["inputs"]["topic"] = topic

    def progress(run: Any) -> None:
        line = text(run.run_id, "dim") + text(f" {run.status:<9} ")
        for step in run.steps:
            line += text(f" {step.step_id}:") + text(step.status, "bold")
        err.print(line)

    async def main() -> Any:
        async with FleetClient.local(g.store_url, artifacts=g.artifacts_root) as client:
            how = f"model {real.name}" if real else "offline"
            err.print(text(f"Hello Fleet on {mask_url(g.store_url)} ({how}, seed {spec['seed']})"))
            result = await run_hello_fleet(client, spec=spec, on_change=progress, model=real)
            events = await client.run_events(result.run.run_id, limit=10_000)
            return result, events

    with reporting(out, err):
        result, events = anyio.run(main)
        _summary(result, events, g.artifacts_root, exporter, _again(g.store))
        if str(result.run.status) != "completed":
            raise typer.Exit(1)
        _verified(g.store_url, g.artifacts_root, result.run.run_id)


def _verified(store_url: str, artifacts_root: Path, run_id: str) -> None:
    """End with what ``fleetforge verify RUN`` says of the run (exit 1 when it fails)."""
    from fleetforge.cli._trust import verify_run

    failures = verify_run(store_url, artifacts_root, run_id)
    for failure in failures:
        out.print(text(str(failure)), soft_wrap=True)
    out.print()
    out.print(text(f"fleetforge verify {run_id}: ") + text(
        "ok" if not failures else f"{len(failures)} failures", "bold"))  # fmt: skip
    if failures:
        raise typer.Exit(1)


def _again(store_flag: str | None) -> str:
    """The command that runs this CLI again, from here, on the same store: ``fleetforge``
    when that is what PATH finds, else this script's path (``.venv/bin/fleetforge``, as
    ``make demo`` runs it) or ``python -m fleetforge``; with ``--store`` unless the store is
    the default one."""
    script = Path(sys.argv[0])
    on_path = shutil.which("fleetforge")
    if script.name == "__main__.py":
        command = f"{_here(Path(sys.executable))} -m fleetforge"
    elif script.name != "fleetforge" or (
        on_path is not None and Path(on_path).resolve() == script.resolve()
    ):
        command = "fleetforge"
    else:
        command = _here(script)
    url = store_flag or os.environ.get("FLEETFORGE_STORE")
    if url:
        command += f" --store {shlex.quote(mask_url(url))}"
    return command


def _here(path: Path) -> str:
    """``path`` relative to the current directory when it is below it, else absolute."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _attested(envelope: dict[str, Any] | None) -> tuple[str, str]:
    """(short attestation id, capability token id) of a receipt's signed attestation."""
    if not envelope:
        return "-", "-"
    from fleetforge.fleet.trust.attest import attestation_id, statement_of

    token = statement_of(envelope).get("predicate", {}).get("capability_token_id")
    return attestation_id(envelope)[:19], token or "-"


def _summary(
    result: Any, events: list[Any], artifacts_root: Any, exporter: Any, again: str
) -> None:
    run = result.run
    adapters: dict[str, str] = {}
    receipts: dict[str, str] = {}
    stored: list[Any] = []
    tools: Counter[str] = Counter()
    attested: dict[str, tuple[str, str]] = {}
    for event in events:
        data = event.data
        if event.type == "task_event":
            adapters.setdefault(data.envelope.step_id, data.envelope.adapter.name)
        elif event.type == "receipt_recorded":
            receipt = data.receipt
            scorer = receipt.score.scorer if receipt.score else "-"
            receipts[receipt.step_id] = f"{receipt.status} ({scorer})"
            stored.extend(receipt.artifacts)
            attested[receipt.step_id] = _attested(data.attestation)
        elif event.type == "tool_called":
            tools[data.tool] += 1
    table = Table("step", "framework", "status", "duration", "receipt", "attestation", "token",
                  box=None, header_style="bold")  # fmt: skip
    for step in run.steps:
        took = (
            f"{(step.finished_at - step.started_at).total_seconds():.2f}s"
            if step.started_at and step.finished_at
            else "-"
        )
        attestation, token = attested.get(step.step_id, ("-", "-"))
        table.add_row(text(step.step_id), text(adapters.get(step.step_id, "-")), text(step.status),
                      took, text(receipts.get(step.step_id, "-")), text(attestation),
                      text(token))  # fmt: skip
    out.print(Text("\n") + text(f"run {run.run_id}", "bold")
              + text(f": {run.status} in {result.seconds:.1f}s"))  # fmt: skip
    out.print(table)
    for artifact in stored:
        from fleetforge.contracts.artifact import artifact_path

        where = artifacts_root / artifact_path(artifact.digest)
        out.print(text(f"artifact {artifact.name or ''} {artifact.digest}"))
        out.print(text(f"  at {where}"))
    if tools:
        out.print(text("tool calls: " + ", ".join(f"{n} x{c}" for n, c in sorted(tools.items()))))
    if exporter is not None:
        names = Counter(span.name.split(" ")[0] for span in exporter.get_finished_spans())
        out.print("spans: " + ", ".join(f"{name} {n}" for name, n in sorted(names.items())))
    look = [f"{again} show {run.run_id}", f"{again} events {run.run_id}",
            f"{again} replay --verify",
            f"{again} verify {run.run_id}",
            f"{again} export {run.run_id} --bundle run.json --aibom run.cdx.json"]  # fmt: skip
    out.print("\nLook further:\n" + "\n".join(f"  {line}" for line in look), markup=False)
    if "***" in again:
        out.print("  (the store's password is masked: give yours)", markup=False)
