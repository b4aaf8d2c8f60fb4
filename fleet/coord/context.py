"""Context survival: checkpoints an agent saves before its context is compacted (and fetches
when it starts again), and named cursors (positions in the event stream or its inbox)."""

from __future__ import annotations

from typing import Any, Literal

from fleetforge._jsondomain import check_json_value
from fleetforge.errors import ContractError, ErrorDetail, NotFoundError
from fleetforge.fleet.access import Caller
from fleetforge.fleet.coord._base import Q, as_datetime, to_dt, transient
from fleetforge.fleet.coord.claims import Claims
from fleetforge.fleet.store._base import canonical_json
from fleetforge.ids import new_id
from fleetforge.operations.coord_results import CheckpointRecord, CursorRecord

__all__ = ["MAX_INLINE_STATE", "Context"]

MAX_INLINE_STATE = 64 * 1024
"""State larger than this (as JSON) goes to the CAS; the event keeps its digest."""
MAX_SUMMARY = 32 * 1024
MAX_CAS_STATE = 8 * 1024 * 1024


class Context(Claims):
    """Checkpoints and cursors."""

    @transient
    def save_checkpoint(
        self,
        project: str,
        agent: str,
        summary: str,
        *,
        state: dict[str, Any] | None = None,
        files: list[str] | None = None,
        next_steps: list[str] | None = None,
        reason: Literal["manual", "context_compacted", "handoff"] = "manual",
        caller: Caller | None = None,
    ) -> CheckpointRecord:
        """Save what the agent needs to pick up again. State up to 64 KiB of JSON is kept in
        the event; larger state (up to 8 MiB) in the CAS, the event keeping its digest."""
        if not summary.strip() or len(summary) > MAX_SUMMARY:
            raise ContractError(
                f"summary must be 1..{MAX_SUMMARY} characters",
                details=[ErrorDetail("/summary", "empty or too long")],
            )
        state = check_json_value(
            state or {}, what="checkpoint state", pointer="/state", max_bytes=MAX_CAS_STATE
        )
        files, next_steps = list(files or []), list(next_steps or [])
        for field, items in (("files", files), ("next_steps", next_steps)):
            if len(items) > 1000 or any(len(i) > 4096 for i in items):
                raise ContractError(
                    f"{field}: at most 1000 items of 4096 characters",
                    details=[ErrorDetail(f"/{field}", "too large")],
                )
        text = canonical_json(state).encode()
        digest = None
        if len(text) > MAX_INLINE_STATE:
            if len(text) > MAX_CAS_STATE or self.artifacts is None:
                why = (
                    "no artifact store"
                    if self.artifacts is None
                    else f"larger than {MAX_CAS_STATE:,} bytes"
                )
                raise ContractError(
                    f"checkpoint state of {len(text):,} bytes: {why}",
                    details=[ErrorDetail("/state", "too large")],
                )
            digest = self.artifacts.put(
                text, media_type="application/json", name="checkpoint-state.json"
            ).digest
            state = {}
        now = self.clock.now()
        with self._unit() as unit:
            me = self._agent(unit.tx, project, agent, caller)
            checkpoint_id = new_id("ckp")
            self._append(
                unit,
                [
                    self._event(
                        "agent_checkpoint_saved",
                        now,
                        checkpoint_id=checkpoint_id,
                        project=project,
                        agent_id=me.agent_id,
                        reason=reason,
                        summary=summary,
                        state=state,
                        files=files,
                        next_steps=next_steps,
                        state_digest=digest,
                    )
                ],
            )
            row = unit.tx.fetchone(
                Q["checkpoint_latest"], {"agent_id": me.agent_id, "project": project}
            )
            assert row is not None
            return self._checkpoint(unit.tx, row, me.callsign)

    def latest_checkpoint(
        self, project: str, agent: str, *, caller: Caller | None = None
    ) -> CheckpointRecord:
        """The agent's newest checkpoint (its state read back from the CAS when stored there)."""
        with self.store.backend.read() as tx:
            me = self._agent(tx, project, agent, caller)
            row = tx.fetchone(Q["checkpoint_latest"], {"agent_id": me.agent_id, "project": project})
            if row is None:
                raise NotFoundError(
                    f"'{agent}' has no checkpoint in project '{project}'",
                    details=[ErrorDetail("/agent", "no checkpoint")],
                )
            return self._checkpoint(tx, row, me.callsign)

    def _checkpoint(self, tx: Any, row: tuple[Any, ...], callsign: str) -> CheckpointRecord:
        checkpoint_id, project, _aid, reason, body, digest, saved_at = row
        body = tx.load_json(body)
        state = body["state"]
        if digest is not None and self.artifacts is not None:
            import json

            state = json.loads(self.artifacts.get(digest))
        return CheckpointRecord(
            checkpoint_id=checkpoint_id,
            project=project,
            callsign=callsign,
            reason=reason,
            summary=body["summary"],
            state=state,
            files=body["files"],
            next_steps=body["next_steps"],
            state_digest=digest,
            saved_at=as_datetime(saved_at),
        )

    @transient
    def move_cursor(
        self, project: str, agent: str, name: str, position: str, *, caller: Caller | None = None
    ) -> CursorRecord:
        """Set a named cursor of the agent (e.g. the last event seq or message id it handled)."""
        if not name or len(name) > 200 or not position or len(position) > 200:
            raise ContractError(
                "cursor name and position must be 1..200 characters",
                details=[
                    ErrorDetail("/name" if not name or len(name) > 200 else "/position", "invalid")
                ],
            )
        now = self.clock.now()
        with self._unit() as unit:
            me = self._agent(unit.tx, project, agent, caller)
            self._append(
                unit,
                [
                    self._event(
                        "cursor_moved",
                        now,
                        project=project,
                        agent_id=me.agent_id,
                        name=name,
                        position=position,
                    )
                ],
            )
        return CursorRecord(name=name, position=position, moved_at=now)

    def get_cursor(
        self, project: str, agent: str, name: str, *, caller: Caller | None = None
    ) -> CursorRecord:
        """A named cursor of the agent (position None when it was never set)."""
        with self.store.backend.read() as tx:
            me = self._agent(tx, project, agent, caller)
            row = tx.fetchone(
                Q["cursor"], {"agent_id": me.agent_id, "project": project, "name": name}
            )
        if row is None:
            return CursorRecord(name=name)
        return CursorRecord(name=name, position=row[0], moved_at=to_dt(row[1]))
