"""``fleetforge keys``: the signing key's file mode, rotation, the public export, secret refs;
and the run bundle carried across stores by ``db export`` / ``db import``."""

from __future__ import annotations

import copy
import json
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from fleetforge.cli import app
from fleetforge.errors import ContractError
from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.fleet.transfer import export_events, import_events
from fleetforge.fleet.trust.bundle import build_bundle
from fleetforge.fleet.trust.keys import (
    TRUST_FILE,
    TrustStore,
    keys_dir,
    load_signing_key,
)
from fleetforge.fleet.trust.verify import verify_bundle

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLEETFORGE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_init_writes_a_0600_key_and_trusts_it(home: Path) -> None:
    first = runner.invoke(app, ["keys", "init"])
    assert first.exit_code == 0, first.output
    key_file = keys_dir(home) / "fleet.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    [entry] = TrustStore.load(keys_dir(home) / TRUST_FILE).keys.values()
    assert entry.key_id in first.output
    assert entry.not_after is None
    again = runner.invoke(app, ["keys", "init"])
    assert again.exit_code == 0
    assert "exists" in again.output
    assert len(TrustStore.load(keys_dir(home) / TRUST_FILE).keys) == 1


def test_threads_creating_the_key_at_once_share_one(tmp_path: Path) -> None:
    """A service's first receipts on several threads each create the fleet key: one write
    wins, every thread signs with that key, and nothing is left behind (20 fresh homes, 8
    threads released at once on each)."""
    for round_ in range(20):
        home = tmp_path / f"home{round_}"
        go = threading.Barrier(8)

        def first_receipt(_: int, home: Path = home, go: threading.Barrier = go) -> str:
            go.wait(timeout=30)
            return load_signing_key(home).key_id

        with ThreadPoolExecutor(8) as pool:
            ids = set(pool.map(first_receipt, range(8)))
        assert len(ids) == 1
        assert list(TrustStore.load(keys_dir(home) / TRUST_FILE).keys) == list(ids)
        assert sorted(p.name for p in keys_dir(home).iterdir()) == ["fleet.key", TRUST_FILE]


def test_a_key_file_others_can_read_is_refused(home: Path) -> None:
    assert runner.invoke(app, ["keys", "init"]).exit_code == 0
    key_file = keys_dir(home) / "fleet.key"
    key_file.chmod(0o644)
    with pytest.raises(ContractError, match="readable by others"):
        load_signing_key(home)
    result = runner.invoke(app, ["keys", "rotate"])
    assert result.exit_code == 1
    assert "chmod 600" in result.output
    assert key_file.read_text().splitlines()[1] not in result.output


def test_rotate_closes_the_old_window_and_keeps_its_public_key(home: Path) -> None:
    assert runner.invoke(app, ["keys", "init"]).exit_code == 0
    old = load_signing_key(home, create=False)
    result = runner.invoke(app, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    new = load_signing_key(home, create=False)
    assert new.key_id != old.key_id
    assert old.key_id in result.output
    trust = TrustStore.load(keys_dir(home) / TRUST_FILE)
    retired, current = trust.keys[old.key_id], trust.keys[new.key_id]
    assert retired.not_after is not None
    assert current.not_after is None
    assert current.not_before == retired.not_after
    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)["keys"]
    assert {k["key_id"]: k["signing"] for k in listed} == {old.key_id: False, new.key_id: True}


def test_export_public_holds_no_private_key(home: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["keys", "init"]).exit_code == 0
    assert runner.invoke(app, ["keys", "rotate"]).exit_code == 0
    out = tmp_path / "trust.json"
    assert runner.invoke(app, ["keys", "export-public", str(out)]).exit_code == 0
    exported = TrustStore.load(out)
    assert exported.keys == TrustStore.load(keys_dir(home) / TRUST_FILE).keys
    private = (keys_dir(home) / "fleet.key").read_text()
    assert "PRIVATE" not in out.read_text()
    assert private.splitlines()[1] not in out.read_text()


def test_a_signing_key_from_a_secret_ref(home: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["keys", "init", "--name", "serve-2"]).exit_code == 0
    pem = (keys_dir(home) / "serve-2.key").read_text()
    key = load_signing_key(tmp_path / "elsewhere", {"FLEETFORGE_SIGNING_KEY": "env://K", "K": pem})
    assert key.key_id in TrustStore.load(keys_dir(home) / TRUST_FILE).keys
    assert not (tmp_path / "elsewhere").exists()
    assert pem.splitlines()[1] not in repr(key)


def test_db_export_and_import_carry_the_attestations(
    store: EventStore, tmp_path: Path, home: Path
) -> None:
    cas = ArtifactStore(tmp_path / "cas")
    fleet = SyncFleetService(store, artifacts=cas)
    fleet.register_worker({"worker_id": "w1", "tools": ["*"]})
    run = fleet.submit_run({"name": "t", "seed": 1, "steps": [{"id": "a", "type": "agent",
                                                               "agent": "x"}]})  # fmt: skip
    [entry] = fleet.lease_task("w1")
    fleet.complete_task(entry.task.task_id, entry.lease.fencing_token, "done")
    dump = tmp_path / "fleet.jsonl"
    with dump.open("w") as out:
        export_events(store, out)
    trust = TrustStore.load(keys_dir(home) / TRUST_FILE)
    with open_store(f"sqlite:///{tmp_path / 'copy.db'}") as copy, dump.open() as source:
        import_events(copy, source)
        bundle = build_bundle(copy, run.run_id, artifacts=cas, trust=trust)
        assert verify_bundle(bundle, trust) == []
        [row] = bundle.projections["receipts"]
        assert row["attestation"]["signatures"][0]["keyid"] in trust.keys


def test_the_attestor_writes_the_dsse_envelope_securesystemslib_writes_and_reads() -> None:
    """Receipts are signed without securesystemslib (it is not imported on the write path);
    the envelope must be byte for byte the one its Envelope.sign writes (Ed25519 signatures
    are deterministic), and verify with it."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

    from fleetforge.fleet.trust.attest import PAYLOAD_TYPE, Attestor
    from fleetforge.fleet.trust.keys import SigningKey

    key = SigningKey.generate()
    statement = {"_type": "x", "subject": [], "predicate": {"text": "é \u2028 \x00", "n": 1.5}}
    ours = Attestor(key).sign(statement)
    public = SSlibKey.from_crypto(key.public(), keyid=key.key_id, scheme="ed25519")
    theirs = Envelope(orjson.dumps(statement), PAYLOAD_TYPE, {})  # the bytes the fleet signs
    theirs.sign(CryptoSigner(key.private_key, public))
    assert ours == theirs.to_dict()
    # from_dict takes the signature dicts apart: give it copies
    assert Envelope.from_dict(copy.deepcopy(ours)).verify([public], 1)  # raises unless valid
    tampered = copy.deepcopy(ours) | {"payload": ours["payload"][:-4] + "AAA="}
    with pytest.raises(VerificationError):
        Envelope.from_dict(tampered).verify([public], 1)
