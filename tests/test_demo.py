"""Hello Fleet end to end, on both stores: four agents on four frameworks, through the armory."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fleetforge.cli._console import out
from fleetforge.cli._demo import _attested, _verified
from fleetforge.client import FleetClient
from fleetforge.demo.hello_fleet import load_spec, run_hello_fleet
from fleetforge.fleet.replay import verify
from fleetforge.fleet.store import open_store

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "workspace"
    monkeypatch.setenv("FLEETFORGE_WORKSPACE", str(folder))
    monkeypatch.setenv("HOME", str(tmp_path))  # importing crewai writes a key under $HOME
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path / "crewai"))
    return folder


def test_the_example_spec_is_the_demo_spec() -> None:
    example = Path(__file__).parents[1] / "examples" / "hello_fleet" / "run_spec.json"
    import json

    assert json.loads(example.read_text()) == load_spec()


async def test_hello_fleet_end_to_end(
    store_url: str, tmp_path: Path, workspace: Path, spans: InMemorySpanExporter
) -> None:
    artifacts = tmp_path / "artifacts"
    async with FleetClient.local(store_url, artifacts=artifacts) as client:
        result = await run_hello_fleet(client)
        events = await client.run_events(result.run.run_id, limit=10_000)
    run = result.run
    assert str(run.status) == "completed", run.error
    receipts = [e.data.receipt for e in events if e.type == "receipt_recorded"]
    assert [r.status for r in receipts] == ["accepted"] * 4
    # the writer's draft: in the workspace and in the CAS at sha256/<b1>/<b2>/<digest>
    write = run.outputs["write"]
    draft = (workspace / "draft.md").read_text()
    assert write["draft"] == draft
    digest = write["artifact"].removeprefix("sha256:")
    stored = artifacts / "sha256" / digest[:2] / digest[2:4] / digest
    assert stored.read_text() == draft
    assert run.outputs["review"]["approved"] is True
    assert len(run.outputs["plan"]["sections"]) == 3
    adapters = {e.data.envelope.step_id: e.data.envelope.adapter.name  # type: ignore[attr-defined]
                for e in events if e.type == "task_event"}  # fmt: skip
    assert adapters == {"plan": "langgraph", "research": "autogen", "write": "crewai",
                        "review": "python"}  # fmt: skip
    assert {e.data.tool for e in events if e.type == "tool_called"} >= {  # type: ignore[attr-defined]
        "workspace.write",
        "workspace.read",
    }
    with open_store(store_url) as store:
        assert verify(store) == []
    # the summary's attestation column and its last line, as `fleetforge demo` prints them
    ids = [_attested(e.data.attestation)[0] for e in events if e.type == "receipt_recorded"]  # type: ignore[attr-defined]
    assert all(i.startswith("sha256:") for i in ids)
    assert len(set(ids)) == 4
    with out.capture() as printed:
        _verified(store_url, artifacts, run.run_id)
    assert printed.get().strip().splitlines()[-1] == f"fleetforge verify {run.run_id}: ok"
    names = [s.name for s in spans.get_finished_spans()]
    assert sum(n.startswith("invoke_agent") for n in names) >= 4
    assert sum(n.startswith("execute_tool") for n in names) >= 4
    assert f"run {run.name}" in names


async def test_hello_fleet_is_deterministic_for_a_seed(
    tmp_path: Path, workspace: Path, spans: InMemorySpanExporter
) -> None:
    drafts = []
    for n in range(2):
        url = f"sqlite:///{tmp_path / f'f{n}.db'}"
        async with FleetClient.local(url, artifacts=tmp_path / "a") as client:
            drafts.append((await run_hello_fleet(client)).run.outputs["write"]["artifact"])
    spec = load_spec() | {"seed": 7}
    async with FleetClient.local(f"sqlite:///{tmp_path / 'f7.db'}", artifacts=tmp_path / "a") as c:
        other = (await run_hello_fleet(c, spec=spec)).run.outputs["write"]["artifact"]
    assert drafts[0] == drafts[1]
    assert other != drafts[0]


async def test_hello_fleet_with_a_real_model_provider(
    tmp_path: Path, workspace: Path, spans: InMemorySpanExporter
) -> None:
    """`--model`: every agent talks to an OpenAI-compatible server (here a loopback fake)."""
    from fleetforge.demo.hello_fleet import RealModel

    from .fake_openai import DRAFT, fake_openai

    with fake_openai() as base_url:
        model = RealModel.from_env("fake-model", {"OPENAI_BASE_URL": base_url})
        url = f"sqlite:///{tmp_path / 'real.db'}"
        async with FleetClient.local(url, artifacts=tmp_path / "artifacts") as client:
            result = await run_hello_fleet(client, model=model)
            events = await client.run_events(result.run.run_id, limit=10_000)
    run = result.run
    assert str(run.status) == "completed", run.error
    assert run.outputs["plan"]["sections"] == ["alpha", "beta", "gamma"]
    assert run.outputs["write"]["draft"] == DRAFT
    assert (workspace / "draft.md").read_text() == DRAFT
    assert run.usage.total_tokens > 0  # the provider's usage reached the receipts
    assert sum(e.type == "receipt_recorded" for e in events) == 4


def test_a_real_model_needs_a_key_or_a_base_url() -> None:
    from fleetforge.demo.hello_fleet import RealModel
    from fleetforge.errors import UsageError

    with pytest.raises(UsageError, match="OPENAI_API_KEY"):
        RealModel.from_env("gpt-4o-mini", {})
