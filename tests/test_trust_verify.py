"""Signed receipts and offline verification, on both stores: a tamper matrix against
``fleetforge verify RUN`` (the store edited through a raw connection, its append-only triggers
dropped as an attacker would) and against a bundle file, each detected with where it is."""

from __future__ import annotations

import base64
import copy
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fleetforge.cli import app
from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.replay import chain_failures
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.fleet.trust.attest import Attestor, statement_of
from fleetforge.fleet.trust.bundle import Bundle, build_bundle, load_bundle
from fleetforge.fleet.trust.keys import TRUST_FILE, SigningKey, TrustStore, keys_dir, rotate_key
from fleetforge.fleet.trust.verify import Failure, verify_bundle

runner = CliRunner()


@dataclass
class Fleet:
    url: str
    store: EventStore
    service: SyncFleetService
    cas: ArtifactStore
    home: Path
    run_id: str

    @property
    def trust(self) -> TrustStore:
        return TrustStore.load(keys_dir(self.home) / TRUST_FILE)

    def bundle(self) -> Bundle:
        return build_bundle(self.store, self.run_id, artifacts=self.cas, trust=self.trust)

    def verify(self) -> list[Failure]:
        return verify_bundle(self.bundle(), self.trust)

    def seqs(self, type_: str) -> list[int]:
        return [e.seq for e in self.store.query_rows(run_id=self.run_id, types=[type_])]


def _three_steps(service: SyncFleetService, cas: ArtifactStore) -> str:
    run = service.submit_run(
        {
            "name": "t",
            "seed": 3,
            "steps": [
                {"id": "a", "type": "agent", "agent": "x"},
                {"id": "b", "type": "agent", "agent": "x", "depends_on": ["a"]},
                {"id": "c", "type": "agent", "agent": "x", "depends_on": ["b"]},
            ],
        }
    )
    for n in range(3):
        [entry] = service.lease_task("w1")
        refs = []
        if entry.task.step_id == "b":
            blob = service.put_artifact(b"draft bytes", media_type="text/plain")
            refs = [{"digest": blob.digest, "size_bytes": blob.size_bytes,
                     "media_type": "text/plain", "name": "draft.md"}]  # fmt: skip
        service.complete_task(entry.task.task_id, entry.lease.fencing_token, {"n": n},
                              artifacts=refs, usage={"model": "fake-1"})  # fmt: skip
    return run.run_id


@pytest.fixture
def fleet(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    home = tmp_path / "home"
    monkeypatch.setenv("FLEETFORGE_HOME", str(home))
    cas = ArtifactStore(tmp_path / "cas")
    with open_store(store_url) as store:
        service = SyncFleetService(store, artifacts=cas)
        service.register_worker({"worker_id": "w1", "tools": ["*"]})
        yield Fleet(store_url, store, service, cas, home, _three_steps(service, cas))


# ── the store, edited through a raw connection ─────────────────────────────────────────────


class Raw:
    """A connection to the store's database that bypasses FleetForge (and its triggers)."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            self.conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"))
            self.conn.execute("DROP TRIGGER events_no_update")
            self.conn.execute("DROP TRIGGER events_no_delete")
        else:
            import psycopg

            self.conn = psycopg.connect(url)
            self.conn.execute("DROP TRIGGER events_append_only ON events")
        self.conn.commit()

    def sql(self, statement: str, *params: Any) -> list[Any]:
        if not self.sqlite:
            statement = statement.replace("?", "%s").replace("data = %s", "data = %s::jsonb")
        cursor = self.conn.execute(statement, params)
        rows = cursor.fetchall() if cursor.description else []
        self.conn.commit()
        return list(rows)

    def data(self, seq: int) -> dict[str, Any]:
        [(value,)] = self.sql("SELECT data FROM events WHERE seq = ?", seq)
        return json.loads(value) if isinstance(value, str) else dict(value)

    def set_data(self, seq: int, data: dict[str, Any]) -> None:
        self.sql("UPDATE events SET data = ? WHERE seq = ?", json.dumps(data), seq)

    def edit(self, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
        data = self.data(seq)
        change(data)
        self.set_data(seq, data)

    def close(self) -> None:
        self.conn.close()


def _resign(data: dict[str, Any], key: SigningKey) -> None:
    data["attestation"] = Attestor(key).receipt(data["receipt"])


def _output(data: dict[str, Any]) -> None:
    data["receipt"]["result"]["output"] = {"n": 99}


def _delete(f: Fleet, raw: Raw) -> None:
    raw.sql("DELETE FROM events WHERE seq = ?", f.seqs("receipt_recorded")[1])


def _insert(f: Fleet, raw: Raw) -> None:
    first = f.seqs("receipt_recorded")[0]
    [row] = raw.sql("SELECT run_id, type, at FROM events WHERE seq = ?", first)
    data = json.dumps(raw.data(first))
    cast = "?" if raw.sqlite else "?::jsonb"
    raw.sql(f"INSERT INTO events (run_id, event_id, type, at, data) VALUES (?, ?, ?, ?, {cast})",
            row[0], "evt_forged", row[1], row[2], data)  # fmt: skip


def _reorder(f: Fleet, raw: Raw) -> None:
    one, two = f.seqs("receipt_recorded")[:2]
    first, second = raw.data(one), raw.data(two)
    raw.set_data(one, second)
    raw.set_data(two, first)


def _truncate(f: Fleet, raw: Raw) -> None:
    raw.sql("DELETE FROM events WHERE seq = ?", f.seqs("receipt_recorded")[-1])


def _artifact(f: Fleet, raw: Raw) -> None:
    [digest] = f.bundle().artifacts
    path = f.cas.path(digest)
    path.chmod(0o644)
    path.write_bytes(b"forged bytes")


def _untrusted(f: Fleet, raw: Raw) -> None:
    raw.edit(f.seqs("receipt_recorded")[1], lambda d: _resign(d, SigningKey.generate("evil")))


def _edit_event(f: Fleet, raw: Raw) -> None:
    def change(data: dict[str, Any]) -> None:
        data["output"] = {"n": 42}

    raw.edit(f.seqs("step_completed")[0], change)


STORE_TAMPERS: dict[str, tuple[Callable[[Fleet, Raw], None], str, str]] = {
    # name: (tamper, where the failure must point, what it must say)
    "receipt deleted": (_delete, "seq {r2} receipt", "prev_hash"),
    "receipt inserted": (_insert, "receipt", "prev_hash"),
    "receipts reordered": (_reorder, "seq {r0} receipt", "prev_hash"),
    "output altered": (
        lambda f, raw: raw.edit(f.seqs("receipt_recorded")[0], _output),
        "seq {r0} receipt",
        "content does not match its hash",
    ),
    "artifact bytes altered": (_artifact, "artifact sha256:", "do not match the digest"),
    "signed by an untrusted key": (_untrusted, "seq {r1} receipt", "does not trust"),
    "chain tail truncated": (_truncate, "run_completed chain_head", "truncated"),
    "event edited in the database": (_edit_event, "steps (", "differs from a replay"),
}


def _where(template: str, f: Fleet) -> str:
    r = f.seqs("receipt_recorded")
    return template.format(r0=r[0], r1=r[1], r2=r[2] if len(r) > 2 else -1)


@pytest.mark.parametrize("case", STORE_TAMPERS)
def test_verify_run_detects_tampering_in_the_store(fleet: Fleet, case: str) -> None:
    assert fleet.verify() == []
    tamper, where, says = STORE_TAMPERS[case]
    where = _where(where, fleet)  # seqs as they were before the tamper
    raw = Raw(fleet.url)
    try:
        tamper(fleet, raw)
    finally:
        raw.close()
    failures = fleet.verify()
    assert any(where in f.where and says in f.message for f in failures), failures
    result = runner.invoke(
        app, ["--store", fleet.url, "--artifacts", str(fleet.cas.root), "verify", fleet.run_id]
    )
    assert result.exit_code == 1, result.output
    assert says in result.output


def test_signed_by_an_expired_key_is_refused(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key rotated out keeps verifying what it signed while current, not what it signs
    after (someone holding the retired private key)."""
    home = tmp_path / "home"
    monkeypatch.setenv("FLEETFORGE_HOME", str(home))
    cas = ArtifactStore(tmp_path / "cas")
    # the rotation closes the window at the local clock's now; the receipts' times come from the
    # service's clock (on PostgreSQL, the server's): a second either side keeps them apart
    real = datetime.now(UTC)
    service = SyncFleetService(store, artifacts=cas, clock=ManualClock(real - timedelta(seconds=1)))
    service.register_worker({"worker_id": "w1", "tools": ["*"]})
    before = _three_steps(service, cas)
    retired = service.attestor()
    assert retired is not None
    _, old_id = rotate_key(home)
    assert old_id == retired.key_id
    trust = TrustStore.load(keys_dir(home) / TRUST_FILE)
    assert verify_bundle(build_bundle(store, before, artifacts=cas, trust=trust), trust) == []
    later = ManualClock(datetime.now(UTC) + timedelta(seconds=1))
    stolen = SyncFleetService(store, artifacts=cas, signing=retired.key, clock=later)
    after = _three_steps(stolen, cas)
    failures = verify_bundle(build_bundle(store, after, artifacts=cas, trust=trust), trust)
    receipts = [e.seq for e in store.query_rows(run_id=after, types=["receipt_recorded"])]
    for seq in receipts:
        assert any(f"seq {seq} receipt" in f.where and "expired key" in f.message
                   for f in failures), failures  # fmt: skip
    assert any("chain_head" in f.where and "expired key" in f.message for f in failures)


def test_replay_verify_checks_the_chain(fleet: Fleet) -> None:
    assert chain_failures(fleet.store) == []
    raw = Raw(fleet.url)
    try:
        raw.edit(fleet.seqs("receipt_recorded")[1], _output)
    finally:
        raw.close()
    [failure] = chain_failures(fleet.store)
    assert f"run {fleet.run_id} seq {fleet.seqs('receipt_recorded')[1]} receipt" in failure
    result = runner.invoke(app, ["--store", fleet.url, "replay", "--verify"])
    assert result.exit_code == 1
    assert "content does not match its hash" in result.output


# ── a bundle, edited as a file ──────────────────────────────────────────────────────────────


def _events_of(b: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [e for e in b["events"] if e["type"] == type_]


def _b_delete(b: dict[str, Any]) -> None:
    b["events"].remove(_events_of(b, "receipt_recorded")[1])


def _b_insert(b: dict[str, Any]) -> None:
    forged = copy.deepcopy(_events_of(b, "receipt_recorded")[0])
    at = b["events"].index(_events_of(b, "receipt_recorded")[1])
    b["events"].insert(at, forged | {"event_id": "evt_forged"})
    for seq, event in enumerate(b["events"], start=1):
        event["seq"] = seq


def _b_reorder(b: dict[str, Any]) -> None:
    one, two = _events_of(b, "receipt_recorded")[:2]
    one["data"], two["data"] = two["data"], one["data"]


def _b_truncate(b: dict[str, Any]) -> None:
    b["events"].remove(_events_of(b, "receipt_recorded")[-1])


def _b_artifact(b: dict[str, Any]) -> None:
    b["artifacts"][0]["content_base64"] = base64.b64encode(b"forged").decode()


def _b_untrusted(b: dict[str, Any]) -> None:
    _resign(_events_of(b, "receipt_recorded")[1]["data"], SigningKey.generate("evil"))


def _b_edit(b: dict[str, Any]) -> None:
    _events_of(b, "receipt_recorded")[0]["data"]["receipt"]["usage"]["model"] = "other"


def _b_projection(b: dict[str, Any]) -> None:
    b["projections"]["runs"][0]["status"] = "failed"


BUNDLE_TAMPERS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "receipt deleted": (_b_delete, "prev_hash"),
    "receipt inserted": (_b_insert, "prev_hash"),
    "receipts reordered": (_b_reorder, "prev_hash"),
    "output altered": (
        lambda b: _output(_events_of(b, "receipt_recorded")[0]["data"]),
        "content does not match its hash",
    ),
    "artifact bytes altered": (_b_artifact, "do not match the digest"),
    "signed by an untrusted key": (_b_untrusted, "does not trust"),
    "chain tail truncated": (_b_truncate, "truncated"),
    "event edited": (_b_edit, "content does not match its hash"),
    "projection row edited": (_b_projection, "differs from a replay"),
}


def test_verify_bundle_detects_tampering(fleet: Fleet, tmp_path: Path) -> None:
    bundle_file, trust_file = tmp_path / "run.bundle.json", tmp_path / "trust.json"
    args = ["--store", fleet.url, "--artifacts", str(fleet.cas.root)]
    exported = runner.invoke(app, [*args, "export", fleet.run_id, "--bundle", str(bundle_file)])
    assert exported.exit_code == 0, exported.output
    assert runner.invoke(app, ["keys", "export-public", str(trust_file)]).exit_code == 0
    clean = json.loads(bundle_file.read_text())
    ok = runner.invoke(app, ["verify", str(bundle_file), "--trust", str(trust_file)])
    assert ok.exit_code == 0, ok.output
    assert f"fleetforge verify {fleet.run_id}: ok" in ok.output
    trust = TrustStore.load(trust_file)
    for case, (tamper, says) in BUNDLE_TAMPERS.items():
        tampered = copy.deepcopy(clean)
        tamper(tampered)
        path = tmp_path / "tampered.json"
        path.write_text(json.dumps(tampered))
        failures = verify_bundle(load_bundle(path), trust)
        assert any(says in f.message for f in failures), (case, failures)
        assert all(f.where for f in failures), case
    result = runner.invoke(app, ["verify", str(path), "--trust", str(trust_file)])
    assert result.exit_code == 1  # the last case: a projection row edited
    assert f"runs ('{fleet.run_id}',) field /status: differs from a replay" in result.output


def test_no_private_key_material_anywhere(fleet: Fleet, tmp_path: Path) -> None:
    """The fleet key's PEM and raw private bytes appear in no event, row, bundle or error."""
    from cryptography.hazmat.primitives import serialization

    attestor = fleet.service.attestor()
    assert attestor is not None
    private = attestor.key.private_key
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())  # fmt: skip
    sentinels = [raw.hex(), base64.b64encode(raw).decode(), (keys_dir(fleet.home) / "fleet.key")
                 .read_text().splitlines()[1]]  # fmt: skip
    texts = [json.dumps(fleet.bundle().to_json()), repr(attestor.key), repr(attestor)]
    texts += [e.data_json() for e in fleet.store.query_rows(limit=10_000)]
    texts.append((keys_dir(fleet.home) / TRUST_FILE).read_text())
    for sentinel in sentinels:
        assert sentinel[:24] not in "\n".join(texts)


def test_a_fleet_without_a_key_creates_one_and_says_where(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    home = tmp_path / "fresh"
    monkeypatch.setenv("FLEETFORGE_HOME", str(home))
    cas = ArtifactStore(tmp_path / "cas")
    service = SyncFleetService(store, artifacts=cas)
    service.register_worker({"worker_id": "w1", "tools": ["*"]})
    with caplog.at_level("INFO", logger="fleetforge.trust"):
        run_id = _three_steps(service, cas)
    key = (home / "keys" / "fleet.key").read_text()
    assert (home / "keys" / "fleet.key").stat().st_mode & 0o777 == 0o600
    [line] = [r.getMessage() for r in caplog.records if "signing key" in r.getMessage()]
    assert str(home / "keys" / "fleet.key") in line
    assert key.splitlines()[1] not in line
    recorded = store.query_rows(run_id=run_id, types=["receipt_recorded"])
    statement = statement_of(recorded[0].data["attestation"])
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicate"]["capability_token_id"].startswith("cap_")  # its lease's token
    assert statement["predicate"]["prev_receipt_hash"] is None
    second = statement_of(recorded[1].data["attestation"])["predicate"]
    assert second["prev_receipt_hash"] == recorded[0].data["receipt"]["hash"]


def test_trust_off_signs_nothing(store: EventStore, tmp_path: Path) -> None:
    cas = ArtifactStore(tmp_path / "cas")
    service = SyncFleetService(store, artifacts=cas, signing=False)
    service.register_worker({"worker_id": "w1", "tools": ["*"]})
    run_id = _three_steps(service, cas)
    events = store.query_rows(run_id=run_id, types=["receipt_recorded", "run_completed"])
    assert [e.data.get("attestation") for e in events[:-1]] == [None, None, None]
    assert events[-1].data.get("chain_head") is None


def test_export_aibom_lists_what_the_run_used(fleet: Fleet, tmp_path: Path) -> None:
    bom_file = tmp_path / "run.cdx.json"
    args = ["--store", fleet.url, "--artifacts", str(fleet.cas.root), "export", fleet.run_id]
    result = runner.invoke(app, [*args, "--aibom", str(bom_file)])
    assert result.exit_code == 0, result.output
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(bom_file.read_text()) is None
    bom = json.loads(bom_file.read_text())
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["specVersion"] == "1.6"
    kinds = {c["name"]: c["type"] for c in bom["components"]}
    assert kinds == {"fleetforge": "framework", "fake-1": "machine-learning-model"}
    assert bom["metadata"]["component"]["name"] == f"fleetforge-run-{fleet.run_id}"


def test_projection_rows_are_compared_cell_by_cell(fleet: Fleet) -> None:
    """The whole-table comparison (rows as read, JSON columns decoded) passes a clean bundle
    whatever order its rows come in, and any difference it finds is located to the row and
    column: a JSON cell, a counter kept by a trigger, a row missing, a row added, a column
    added (both stores export; the replay is SQLite)."""
    clean = fleet.bundle()
    trust = fleet.trust
    assert verify_bundle(clean, trust) == []
    run = fleet.run_id
    b_task = f"tasks ('{run}', '{run}.b')"

    def tampered(change: Callable[[dict[str, list[dict[str, Any]]]], None]) -> list[str]:
        bundle = copy.deepcopy(clean)
        change(bundle.projections)
        return [str(f) for f in verify_bundle(bundle, trust) if f.check == "projections"]

    def reverse(p: dict[str, list[dict[str, Any]]]) -> None:
        for rows in p.values():
            rows.reverse()  # another store's collation orders keys its own way

    def set_cell(table: str, step: str, column: str, value: Any) -> Callable[..., None]:
        def change(p: dict[str, list[dict[str, Any]]]) -> None:
            [row] = [r for r in p[table] if r["step_id"] == step]
            row[column] = value

        return change

    def drop_row(p: dict[str, list[dict[str, Any]]]) -> None:
        p["steps"] = [r for r in p["steps"] if r["step_id"] != "c"]

    def add_row(p: dict[str, list[dict[str, Any]]]) -> None:
        p["steps"].append(p["steps"][0] | {"step_id": "forged"})

    def add_column(p: dict[str, list[dict[str, Any]]]) -> None:
        p["runs"][0]["forged"] = "x"

    assert tampered(reverse) == []
    assert tampered(set_cell("tasks", "b", "output", {"n": 7})) == [
        f"{b_task} field /output: differs from a replay of the events"
    ]
    assert tampered(set_cell("steps", "c", "deps_open", 1)) == [
        f"steps ('{run}', 'c') field /deps_open: differs from a replay of the events"
    ]
    assert tampered(drop_row) == [f"steps ('{run}', 'c'): missing (replay has it)"]
    assert tampered(add_row) == [f"steps ('{run}', 'forged'): not produced by replay"]
    assert tampered(add_column) == [
        f"runs ('{run}',) field /forged: differs from a replay of the events"
    ]


def test_a_malformed_envelope_is_a_failure_at_its_receipt(fleet: Fleet) -> None:
    """The signature check reads each envelope itself (securesystemslib's PAE): a signature
    that is not base64, a key id signing twice, a missing payload type or signature list are
    failures located at the receipt, never an exception."""
    clean = fleet.bundle()
    trust = fleet.trust
    [seq, *_] = fleet.seqs("receipt_recorded")
    where = f"seq {seq} receipt"

    def broken(change: Callable[[dict[str, Any]], None]) -> list[str]:
        bundle = copy.deepcopy(clean)
        [event] = [e for e in bundle.events if e.seq == seq]
        change(event.data["attestation"])
        return [f.message for f in verify_bundle(bundle, trust)
                if f.check == "signature" and f.where.startswith(where)]  # fmt: skip

    def twice(envelope: dict[str, Any]) -> None:
        envelope["signatures"].append(dict(envelope["signatures"][0]))

    def not_base64(envelope: dict[str, Any]) -> None:
        envelope["signatures"][0]["sig"] = "not base64!"

    def other_bytes(envelope: dict[str, Any]) -> None:
        envelope["signatures"][0]["sig"] = base64.b64encode(b"\0" * 64).decode()

    assert any("malformed" in m and "Multiple signatures" in m for m in broken(twice))
    assert any("malformed" in m for m in broken(not_base64))
    assert any("malformed" in m for m in broken(lambda e: e.pop("payloadType")))
    assert any("malformed" in m for m in broken(lambda e: e.pop("signatures")))
    assert any("has no signature" in m for m in broken(lambda e: e.update(signatures=[])))
    assert any("does not verify" in m for m in broken(other_bytes))
    # a payload that is not a string, a predicate that is not an object: failures, not crashes
    assert any("not JSON" in m for m in broken(lambda e: e.update(payload=123)))

    def list_predicate(envelope: dict[str, Any]) -> None:
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["predicate"] = ["not", "an", "object"]
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    assert any("predicate is not an object" in m for m in broken(list_predicate))


def test_an_event_the_replay_cannot_apply_is_a_failure_at_its_seq(fleet: Fleet) -> None:
    """A forged event the projections refuse (a receipt recorded twice: its row exists) is
    reported where it is; the scratch store of the replay (no rollback journal) is dropped."""
    from fleetforge.fleet.store import EventRow

    bundle = fleet.bundle()
    [first, *_] = [e for e in bundle.events if e.type == "receipt_recorded"]
    last = bundle.events[-1].seq
    forged = EventRow(last + 1, "evt_forged", first.run_id, first.type, first.at, first.data)
    bundle.events.append(forged)
    failures = [f for f in verify_bundle(bundle, fleet.trust) if f.check == "projections"]
    [failure] = failures
    assert failure.where == f"seq {last + 1} receipt_recorded"
    assert "replay cannot apply it" in failure.message
