"""Content-addressed artifacts: blobs under ``<root>/sha256/<b1>/<b2>/<hex digest>`` (seed 000).

- Writes stream in chunks to a temp file in the root, are fsynced, and are renamed into place, so
  a reader never sees half a blob and a crash leaves at most a temp file.
- The same content stored twice is one blob (idempotent).
- Reads verify the digest: a corrupted blob raises :class:`~fleetforge.errors.StoreError`.
- A size limit (default 64 MiB) refuses larger blobs with a clear error before they land.

The blob store holds bytes only; metadata (:class:`~fleetforge.contracts.Artifact`) goes into the
event log as ``artifact_stored`` (see :func:`record_artifact`), validated against ``artifact``.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from fleetforge.contracts import Artifact, FleetArtifactKind, artifact_path
from fleetforge.contracts._base import utcnow
from fleetforge.contracts.events import ArtifactStored, ArtifactStoredData
from fleetforge.errors import ContractError, NotFoundError, StoreError, UsageError
from fleetforge.fleet._sql import named_queries
from fleetforge.ids import new_id

if TYPE_CHECKING:
    from fleetforge.fleet.store import EventStore

__all__ = ["DEFAULT_MAX_BYTES", "ArtifactStore", "record_artifact"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


class ArtifactStore:
    """A local directory of content-addressed blobs."""

    def __init__(self, root: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise UsageError(f"max_bytes must be positive, got {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r}, max_bytes={self.max_bytes})"

    def path(self, digest: str) -> Path:
        """Where the blob of ``digest`` lives (whether or not it exists)."""
        _check_digest(digest)
        return self.root / artifact_path(digest)

    def put(
        self,
        content: bytes | IO[bytes] | Iterable[bytes],
        *,
        media_type: str = "application/octet-stream",
        kind: FleetArtifactKind | str = FleetArtifactKind.FILE,
        name: str | None = None,
        run_id: str | None = None,
        step_id: str | None = None,
        task_id: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Artifact:
        """Store content (bytes, a binary file object or an iterable of chunks); return its
        metadata. Storing the same bytes again returns the same digest and writes nothing."""
        self.root.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=self.root)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(content):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ContractError(
                            f"artifact is larger than the {self.max_bytes:,}-byte limit "
                            "(raise it with max_bytes / --max-bytes)",
                            limit=self.max_bytes,
                        )
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = f"sha256:{hasher.hexdigest()}"
            final = self.path(digest)
            if final.exists():
                tmp.unlink()
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                _fsync_dir(final.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Artifact(
            digest=digest,
            size_bytes=size,
            media_type=media_type,
            kind=FleetArtifactKind(kind),
            name=name,
            path=artifact_path(digest),
            created_at=utcnow(),
            run_id=run_id,
            step_id=step_id,
            task_id=task_id,
            labels=labels or {},
        )

    def open(self, digest: str) -> Iterator[bytes]:
        """Stream a blob's chunks; the digest is checked when the stream ends."""
        path = self.path(digest)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"no artifact {digest}", digest=digest) from None
        hasher = hashlib.sha256()
        with handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
                yield chunk
        if f"sha256:{hasher.hexdigest()}" != digest:
            raise StoreError(
                f"artifact {digest} is corrupted: its content hashes to "
                f"sha256:{hasher.hexdigest()}",
                digest=digest,
            )

    def get(self, digest: str) -> bytes:
        """A blob's bytes, verified against its digest."""
        return b"".join(self.open(digest))

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()


def record_artifact(store: EventStore, artifact: Artifact) -> bool:
    """Append ``artifact_stored`` for a blob not yet in the store's artifacts projection.

    The metadata is validated against the ``artifact`` schema first. Returns False when the
    digest was already recorded (the first record wins, as with the blob itself).
    """
    from fleetforge import schemas

    schemas.validate("artifact", artifact.model_dump(mode="json"))
    with store.backend.read() as tx:
        known = tx.fetchone(
            named_queries("projections.sql")["artifact_exists"], {"digest": artifact.digest}
        )
    if known:
        return False
    event = ArtifactStored(
        event_id=new_id("evt"),
        run_id=artifact.run_id,
        at=artifact.created_at,
        data=ArtifactStoredData(artifact=artifact),
    )
    store.append(event)
    return True


def _chunks(content: bytes | IO[bytes] | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(content, bytes | bytearray | memoryview):
        stream: Any = io.BytesIO(bytes(content))
    else:
        stream = content
    if hasattr(stream, "read"):
        while chunk := stream.read(_CHUNK):
            yield chunk
    else:
        yield from stream


def _check_digest(digest: str) -> None:
    hexdigest = digest.removeprefix("sha256:")
    if (
        not digest.startswith("sha256:")
        or len(hexdigest) != 64
        or not all(c in "0123456789abcdef" for c in hexdigest)
    ):
        raise ContractError(f"{digest!r} is not a digest: 'sha256:' and 64 lowercase hex digits")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
