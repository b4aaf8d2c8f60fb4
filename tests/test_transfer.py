"""Moving a fleet: export from SQLite, import into PostgreSQL, identical projections."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fleetforge.errors import ConflictError, ContractError
from fleetforge.fleet.artifacts import ArtifactStore, record_artifact
from fleetforge.fleet.replay import verify
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.fleet.store._base import iso
from fleetforge.fleet.transfer import export_events, import_events
from fleetforge.ids import new_id
from tests.factories import run_lifecycle


def _neutral(value: Any) -> Any:
    """The same value whichever backend read it (JSON text vs jsonb, text vs timestamptz)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def _projections(store: EventStore) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: [tuple(_neutral(v) for v in row) for row in store.table_rows(table)]
        for table in ("runs", "steps", "artifacts")
    }


def test_sqlite_to_postgres(tmp_path: Path, pg_url: str) -> None:
    with open_store(f"sqlite:///{tmp_path / 'fleet.db'}") as source:
        for _ in range(3):
            source.append(run_lifecycle(new_id("run")))
        record_artifact(source, ArtifactStore(tmp_path / "a").put(b"blob", run_id="r"))
        dump = io.StringIO()
        assert export_events(source, dump) == 28
        expected = _projections(source)
    dump.seek(0)
    with open_store(pg_url) as target:
        assert import_events(target, dump) == 28
        assert _projections(target) == expected
        assert verify(target) == []


def test_import_refuses_a_store_that_has_events(store: EventStore) -> None:
    store.append(run_lifecycle(new_id("run")))
    dump = io.StringIO()
    export_events(store, dump)
    dump.seek(0)
    with pytest.raises(ConflictError, match="import only into an empty store"):
        import_events(store, dump)


def test_import_validates_every_event(store: EventStore) -> None:
    at = "2026-11-22T10:00:00Z"
    lines = [
        json.dumps({"format": "fleetforge-events", "version": 1, "events": 1}),
        json.dumps({"event_id": "e1", "type": "step_ready", "run_id": "r", "at": at, "data": {}}),
    ]
    with pytest.raises(ContractError) as info:
        import_events(store, io.StringIO("\n".join(lines)))
    assert [d.pointer for d in info.value.details] == ["/data/step_id"]
    assert store.count() == 0


def test_import_needs_the_header(store: EventStore) -> None:
    with pytest.raises(ContractError, match="not a FleetForge export"):
        import_events(store, io.StringIO('{"event_id": "x"}\n'))
