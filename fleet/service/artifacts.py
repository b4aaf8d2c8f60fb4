"""Artifacts: content-addressed blobs a run's tasks store and read back."""

from __future__ import annotations

from typing import Any

from fleetforge._jsondomain import check_json_value
from fleetforge.contracts import Artifact
from fleetforge.errors import ContractError, ErrorDetail, NotFoundError, UsageError
from fleetforge.fleet._state import load_task, task_from_row
from fleetforge.fleet.access import Caller, Refusal, refusal
from fleetforge.fleet.artifacts import ArtifactStore, record_artifact
from fleetforge.fleet.service.core import Q, retrying
from fleetforge.fleet.service.heartbeats import Heartbeats

DEFAULT_MAX_ARTIFACT_BYTES = 8 * 1024 * 1024


class Artifacts(Heartbeats):
    """Artifacts: content-addressed blobs a run's tasks store and read back."""

    @retrying
    def put_artifact(
        self, content: bytes, *, caller: Caller | None = None, **metadata: Any
    ) -> Artifact:
        """Store bytes in the content-addressed store and record their metadata.

        An artifact of a task needs ``caller`` to hold that task's lease; one of a run needs a
        lease in the run, or the ``submit`` scope."""
        metadata = check_json_value(metadata, what="artifact metadata", lenient=True)
        if caller is not None:
            self._check_artifact_owner(caller, metadata.get("run_id"), metadata.get("task_id"))
        artifact = self._artifact_store().put(content, **metadata)
        record_artifact(self.store, artifact)
        return artifact

    def _check_artifact_owner(self, caller: Caller, run_id: Any, task_id: Any) -> None:
        if task_id is None and (run_id is None or caller.allows("submit")):
            return
        with self.store.backend.read() as tx:
            if task_id is not None:
                task = load_task(tx, str(task_id))
                if task is None:
                    raise NotFoundError(f"no task '{task_id}'", task_id=task_id)
                if run_id is not None and run_id != task.run_id:
                    raise ContractError(
                        f"task '{task_id}' belongs to run '{task.run_id}', not '{run_id}'",
                        details=[ErrorDetail("/run_id", f"must be {task.run_id!r}")],
                    )
                candidates = [task] if task.status == "leased" else []
                run_id = task.run_id
            else:
                rows = tx.fetchall(Q["run_leases"], {"run_id": run_id})
                candidates = [task_from_row(tx, r) for r in rows]
        if not any(refusal(caller, t) is None for t in candidates):
            where = f"task '{task_id}'" if task_id is not None else f"run '{run_id}'"
            reason = f"{caller.label} holds no lease in {where}"
            raise Refusal(caller, "put_artifact", reason, task_id=task_id, run_id=str(run_id))

    def get_artifact(self, digest: str) -> tuple[Artifact, bytes]:
        """An artifact's recorded metadata and its bytes (verified against the digest)."""
        columns = ("digest", "size_bytes", "media_type", "kind", "name", "path", "created_at",
                   "run_id", "step_id", "task_id", "labels")  # fmt: skip
        with self.store.backend.read() as tx:
            row = tx.fetchone(Q["artifact"], {"digest": digest})
            if row is None:
                raise NotFoundError(f"no artifact {digest} is recorded", digest=digest)
            values = dict(zip(columns, row, strict=True))
            values["labels"] = tx.load_json(values["labels"])
        return Artifact.model_validate(values), self._artifact_store().get(digest)

    def _artifact_store(self) -> ArtifactStore:
        if self.artifacts is None:
            raise UsageError("this FleetService has no artifact store (pass artifacts=...)")
        return self.artifacts
