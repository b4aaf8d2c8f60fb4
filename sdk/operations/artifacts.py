"""Operations on the content-addressed artifact store."""

from __future__ import annotations

import base64
import binascii

from pydantic import Field

from fleetforge.contracts import Artifact, FleetArtifactKind
from fleetforge.errors import ContractError, ErrorDetail
from fleetforge.operations._base import Args, Call, Operation
from fleetforge.operations.results import ArtifactContent
from fleetforge.operations.work import WorkerId

__all__ = ["GET_ARTIFACT", "PUT_ARTIFACT"]


class PutArtifactArgs(Args):
    content: str = Field(
        description="The bytes, base64-encoded; at most the server's limit (8 MiB by default) "
        "once decoded."
    )
    media_type: str = Field(
        "application/octet-stream", description="IANA media type, e.g. text/markdown."
    )
    name: str | None = Field(None, description="File name, for people.")
    kind: FleetArtifactKind = Field(FleetArtifactKind.FILE, description="What it holds.")
    run_id: str | None = Field(None, description="Run that produced it.")
    step_id: str | None = Field(None, description="Step that produced it.")
    task_id: str | None = Field(None, description="Task that produced it.")
    worker_id: WorkerId = None


def _put(call: Call, a: PutArtifactArgs) -> Artifact:
    limit = call.max_artifact_bytes
    if len(a.content) > (limit + 2) // 3 * 4:
        raise ContractError(
            f"artifact is larger than the {limit:,}-byte limit",
            details=[ErrorDetail("/content", "too large")],
        )
    try:
        data = base64.b64decode(a.content, validate=True)
    except (binascii.Error, ValueError):
        raise ContractError(
            "content is not valid base64",
            details=[ErrorDetail("/content", "expected standard base64 (A-Z a-z 0-9 + /, =)")],
        ) from None
    return call.fleet.put_artifact(
        data,
        media_type=a.media_type,
        name=a.name,
        kind=a.kind,
        run_id=a.run_id,
        step_id=a.step_id,
        task_id=a.task_id,
        caller=call.caller,
    )


PUT_ARTIFACT = Operation(
    "put_artifact",
    PutArtifactArgs,
    Artifact,
    "work",
    "Store an artifact",
    """Store bytes in the content-addressed artifact store; returns the digest to cite in a
receipt's artifacts. Storing the same bytes again returns the same digest. An artifact of a task
needs your lease on it; one of a run needs a lease in the run (or the submit scope).""",
    _put,
    idempotent=True,
    as_worker=True,
    cli="artifacts put",
)


class GetArtifactArgs(Args):
    digest: str = Field(description="`sha256:` + 64 hex digits.")


def _get(call: Call, a: GetArtifactArgs) -> ArtifactContent:
    artifact, data = call.fleet.get_artifact(a.digest)
    return ArtifactContent(artifact=artifact, content=base64.b64encode(data).decode())


GET_ARTIFACT = Operation(
    "get_artifact",
    GetArtifactArgs,
    ArtifactContent,
    "read",
    "Read an artifact",
    "Read an artifact: its metadata and its bytes (base64). NotFoundError if unknown.",
    _get,
    read_only=True,
    cli="artifacts get",
)
