"""Artifact metadata (seed 000 `artifact`): what is known of one blob in the content store."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from fleetforge.contracts._base import Digest, Identifier, Labels, ProtocolModel, Timestamp
from fleetforge.contracts.protocol import FleetArtifactKind

__all__ = ["Artifact", "artifact_path"]

_HEX = r"[0-9a-f]{64}"


def artifact_path(digest: str) -> str:
    """The store key of a digest: ``sha256/<b1>/<b2>/<hex>`` (b1, b2: first two bytes in hex)."""
    hexdigest = digest.removeprefix("sha256:")
    return f"sha256/{hexdigest[0:2]}/{hexdigest[2:4]}/{hexdigest}"


class Artifact(ProtocolModel):
    """Metadata of one content-addressed blob."""

    digest: Digest = Field(description="`sha256:` followed by the 64-hex digest of the content.")
    size_bytes: int = Field(ge=0, description="Size of the content in bytes.")
    media_type: str = Field(min_length=1, description="IANA media type of the content.")
    kind: FleetArtifactKind = Field(FleetArtifactKind.FILE, description="What it holds.")
    name: str | None = Field(None, description="Optional file name.")
    path: Annotated[str, Field(pattern=rf"^sha256/[0-9a-f]{{2}}/[0-9a-f]{{2}}/{_HEX}$")] = Field(
        description="Key under the artifact root: `sha256/<b1>/<b2>/<hex digest>`."
    )
    created_at: Timestamp = Field(description="When it was first stored.")
    run_id: Identifier | None = Field(None, description="Run that produced it, if any.")
    step_id: Identifier | None = Field(None, description="Step that produced it, if any.")
    task_id: Identifier | None = Field(None, description="Task that produced it, if any.")
    labels: Labels = Field(default_factory=dict, description="Free labels.")

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "digest": "sha256:" + "ab" * 32,
                    "size_bytes": 1834,
                    "media_type": "text/markdown",
                    "kind": "report",
                    "name": "draft.md",
                    "path": "sha256/ab/ab/" + "ab" * 32,
                    "created_at": "2026-11-22T10:00:00Z",
                    "run_id": "run_01JD3Z6Q",
                    "step_id": "write",
                }
            ]
        }
    }
