"""Content-addressed artifacts: layout, round trip, idempotence, corruption, size limit."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from fleetforge import schemas
from fleetforge.errors import ContractError, NotFoundError, StoreError
from fleetforge.fleet.artifacts import ArtifactStore, record_artifact
from fleetforge.fleet.store import EventStore


def test_round_trip_and_layout(tmp_path: Path) -> None:
    cas = ArtifactStore(tmp_path)
    content = b"# Draft\n\nhello fleet\n"
    artifact = cas.put(content, media_type="text/markdown", kind="report", name="draft.md")
    hexdigest = hashlib.sha256(content).hexdigest()
    assert artifact.digest == f"sha256:{hexdigest}"
    assert artifact.size_bytes == len(content)
    assert artifact.path == f"sha256/{hexdigest[:2]}/{hexdigest[2:4]}/{hexdigest}"
    assert (tmp_path / artifact.path).read_bytes() == content
    assert cas.get(artifact.digest) == content
    schemas.validate("artifact", artifact.model_dump(mode="json"))
    assert list(tmp_path.glob(".incoming-*")) == []


def test_streams_and_chunks(tmp_path: Path) -> None:
    cas = ArtifactStore(tmp_path)
    big = bytes(range(256)) * 20_000  # 5 MB, several chunks
    from_stream = cas.put(io.BytesIO(big))
    from_chunks = cas.put(iter([big[:1000], big[1000:]]))
    assert from_stream.digest == from_chunks.digest
    assert b"".join(cas.open(from_stream.digest)) == big


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    cas = ArtifactStore(tmp_path)
    first = cas.put(b"same")
    blob = tmp_path / first.path
    mtime = blob.stat().st_mtime_ns
    second = cas.put(b"same")
    assert second.digest == first.digest
    assert blob.stat().st_mtime_ns == mtime
    assert len(list(tmp_path.rglob("*"))) == len(list(tmp_path.rglob("*")))  # no temp left
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".incoming")] == []


def test_corruption_is_detected_on_read(tmp_path: Path) -> None:
    cas = ArtifactStore(tmp_path)
    artifact = cas.put(b"trustworthy")
    (tmp_path / artifact.path).write_bytes(b"tampered!!!")
    with pytest.raises(StoreError, match="is corrupted"):
        cas.get(artifact.digest)


def test_missing_and_malformed_digests(tmp_path: Path) -> None:
    cas = ArtifactStore(tmp_path)
    with pytest.raises(NotFoundError):
        cas.get("sha256:" + "1" * 64)
    with pytest.raises(ContractError, match="is not a digest"):
        cas.get("md5:abc")


def test_size_limit_refuses_and_leaves_nothing(tmp_path: Path) -> None:
    cas = ArtifactStore(tmp_path, max_bytes=1024)
    with pytest.raises(ContractError, match="larger than the 1,024-byte limit"):
        cas.put(b"x" * 1025)
    assert list(tmp_path.iterdir()) == []
    cas.put(b"x" * 1024)


def test_metadata_is_recorded_once_per_digest(store: EventStore, tmp_path: Path) -> None:
    cas = ArtifactStore(tmp_path)
    artifact = cas.put(b"report body", media_type="text/plain", run_id="run_1", step_id="write")
    assert record_artifact(store, artifact) is True
    assert record_artifact(store, cas.put(b"report body")) is False
    [row] = store.table_rows("artifacts")
    assert row[0] == artifact.digest
    assert store.count(types=["artifact_stored"]) == 1
