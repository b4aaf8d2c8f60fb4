"""A worker process of the PostgreSQL write-path floor (bench_pgfloor.py).

``python _pgfloor_worker.py DSN WORKER_ID MAX_TASKS TRUST(on|off) [LANES [defer]]``; prints
"ready", waits for a line on stdin, works until no task came for 0.3 s, then prints one JSON line
of its counts.

A call is one statement, ``fleetfloor.cycle(batch)`` (benchmarks/_pgfloor.sql), sent with the
store's NOTIFY in one pipeline flush (one round trip, as the product's writes end): the receipts
of the tasks this worker holds and the lease of its next ones. The engine's part is done here, in
Python, the way fleet/service does it: each receipt is built, chained on the run's head (as this
worker last saw it: an optimistic compare-and-swap the function checks), scored, signed (DSSE,
the fleet key, fleetforge.fleet.trust.attest.Attestor) and turned into its events by
fleetforge.fleet._events.engine_row; for every run in the batch the chain-head statement a
run_completed would carry is signed too, in case this batch ends the run. With trust on, the
leased tasks' Biscuit tokens are minted after the lease committed (their ids were fixed by the
lease, from this call's nonce) and stored by a second statement, ``fleetfloor.capabilities``, a
transaction of its own: counted. With LANES (> 0) the worker (id ``p<i>``) leases tasks of the
runs in its lane first (hashtext(run_id) mod LANES = i), then any. With ``defer`` the token rows
travel with the worker's next call instead of a statement of their own (they are then stored
when the tasks complete, not while they run).
"""

from __future__ import annotations

import hashlib
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from fleetforge.capabilities import glob_regex
from fleetforge.fleet._events import engine_row, timestamp
from fleetforge.fleet.scoring import score
from fleetforge.fleet.store._base import hashed_json, iso
from fleetforge.fleet.trust.attest import Attestor
from fleetforge.fleet.trust.keys import load_signing_key
from fleetforge.ids import new_id

sys.path.insert(0, str(Path(__file__).parent))
from _floors import receipt_template

LEASE_SECONDS = 60.0
_NOTIFY = "SELECT set_config('synchronous_commit', 'off', true), pg_notify('fleetforge_events', '')"
_CYCLE = "SELECT fleetfloor.cycle(%s::jsonb)"
_CAPS = "SELECT fleetfloor.capabilities(%s::jsonb)"
_UNHASHED = ("status", "score", "hash", "posted_at")


class Floor:
    """One worker's engine side: builds the batch, reads the answer."""

    def __init__(
        self,
        dsn: str,
        worker_id: str,
        max_tasks: int,
        trust: bool,
        lanes: int | None = None,
        defer: bool = False,
    ) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        set_json_loads(orjson.loads, self.conn)
        self.conn.execute("SET track_functions = 'pl'")
        self.worker_id = worker_id
        self.max_tasks = max_tasks
        self.trust = trust
        self.lanes = lanes  # run-affine leases: this worker's lane is its index
        self.lane = int(worker_id.lstrip("p")) if lanes else None
        self.defer = defer
        self.pending_caps: list[list[Any]] = []
        self.template = receipt_template()
        self.verdict = score(None, None).model_dump(mode="json")  # no scorer: accepted
        self.attestor = Attestor(load_signing_key(Path(os.environ["FLEETFORGE_HOME"])))
        self.root: Any = None
        if trust:
            import biscuit_auth

            algorithm = biscuit_auth.Algorithm.Ed25519  # type: ignore[attr-defined]
            self.root = biscuit_auth.PrivateKey.from_bytes(  # type: ignore[call-arg]
                bytes.fromhex(os.environ["FLEETFLOOR_ROOT"]), algorithm
            )
        self.heads: dict[str, tuple[str | None, int]] = {}
        self.held: list[dict[str, Any]] = []
        self.counts = {"calls": 0, "statements": 0, "round_trips": 0, "done": 0,
                       "cas_conflicts": 0, "resigned": 0, "signatures": 0, "mints": 0,
                       "lease_lost": 0, "idle_calls": 0}  # fmt: skip

    # ── the engine's work for one batch ─────────────────────────────────────────────────────

    def _receipt(self, task: dict[str, Any], prev: str | None, now: datetime) -> dict[str, Any]:
        """The judged receipt's JSON form, chained on ``prev`` (service/receipts.py)."""
        task_id, token = task["task_id"], task["ft"]
        body = dict(self.template)
        body.update(
            receipt_id="rcp_" + hashlib.sha256(f"{task_id}:{token}".encode()).hexdigest()[:26],
            run_id=task["run_id"],
            step_id=task["step_id"],
            task_id=task_id,
            attempt=task["attempt"],
            worker_id=self.worker_id,
            fencing_token=token,
            prev_hash=prev,
        )
        hashed = {k: v for k, v in body.items() if k not in _UNHASHED}
        body["hash"] = "sha256:" + hashlib.sha256(hashed_json(hashed).encode()).hexdigest()
        body["posted_at"] = timestamp(now)
        body["status"] = "accepted"
        body["score"] = self.verdict
        return body

    def _groups(self, now: datetime) -> list[dict[str, Any]]:
        by_run: dict[str, list[dict[str, Any]]] = {}
        for task in self.held:
            by_run.setdefault(task["run_id"], []).append(task)
        groups = []
        for run_id in sorted(by_run):
            prev, pos = self.heads.get(run_id, (None, 0))
            start_hash, start_pos = prev, pos
            items = []
            for task in sorted(by_run[run_id], key=lambda t: t["task_id"]):
                receipt = self._receipt(task, prev, now)
                data: dict[str, Any] = {"receipt": receipt}
                if self.trust:
                    data["attestation"] = self.attestor.receipt(
                        receipt, capability_token_id=task["cap"], policy_decisions=[],
                        worker_signature=None,
                    )  # fmt: skip
                    self.counts["signatures"] += 1
                recorded = engine_row("receipt_recorded", run_id, now, data)
                completed = engine_row(
                    "step_completed", run_id, now, {"step_id": task["step_id"], "output": None}
                )
                items.append(
                    {
                        "task_id": task["task_id"],
                        "fencing_token": task["ft"],
                        "ev": [
                            [e.event_id, e.type, orjson.Fragment(e.data_json())]
                            for e in (recorded, completed)
                        ],
                    }
                )
                prev, pos = receipt["hash"], pos + 1
            head = None
            if self.trust:  # signed in case this batch ends the run (core._chain_head)
                head = {
                    "receipts": pos,
                    "head": prev,
                    "key_id": self.attestor.key_id,
                    "attestation": self.attestor.chain_head(
                        run_id, prev, pos, "run_completed", iso(now)
                    ),
                }
                self.counts["signatures"] += 1
            groups.append(
                {
                    "run_id": run_id,
                    "prev_hash": start_hash,
                    "prev_pos": start_pos,
                    "chain_head": head,
                    "final_event_id": new_id("evt"),
                    "items": items,
                }
            )
        return groups

    def _mint(self, task: dict[str, Any], expires: datetime) -> list[Any]:
        """The task's capability token (trust/capabilities.py's CapabilityMint.mint, plus the
        id the lease fixed as a fact), as a task_capabilities row."""
        import biscuit_auth

        code = "\n".join(
            [
                "run({run});",
                "task({task});",
                "capability({cap});",
                "grant({grant0});",
                "allow_tool({allow_tool0});",
                "check if time($t), $t <= {exp};",
                "check if operation($op), grant($re), $op.matches($re);",
                "check if operation($op), allow_tool($re), $op.matches($re);",
                "reject if operation($op), deny_tool($re), $op.matches($re);",
            ]
        )
        params = {
            "run": task["run_id"],
            "task": task["task_id"],
            "cap": task["cap"],
            "grant0": glob_regex("*"),
            "allow_tool0": glob_regex("*"),
            "exp": expires,
        }
        token = biscuit_auth.BiscuitBuilder(code, params).build(self.root)
        self.counts["mints"] += 1
        return [task["task_id"], task["run_id"], task["ft"], task["cap"], token.to_base64(),
                iso(expires)]  # fmt: skip

    # ── one call ────────────────────────────────────────────────────────────────────────────

    def call(self) -> int:
        """Complete what is held and lease the next; return how many tasks are held after."""
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=LEASE_SECONDS)
        # the held tasks are completed by this very call: lease a full batch (fewer only while
        # receipts a compare-and-swap sent back are held on top of one)
        lease_next = max(0, min(self.max_tasks, 2 * self.max_tasks - len(self.held)))
        nonce = os.urandom(16).hex() if self.trust else None
        batch = {
            "now": iso(now),
            "worker_id": self.worker_id,
            "role": None,
            "rank": 0,
            "has_key": 0,
            "credential": None,
            "expires_at": timestamp(expires),
            "lease_next": lease_next,
            "cap_nonce": nonce,
            "lanes": self.lanes,
            "lane": self.lane,
            "event_ids": [new_id("evt") for _ in range(lease_next)],
            "groups": self._groups(now),
            "capabilities": self.pending_caps,
        }
        self.pending_caps = []
        with self.conn.pipeline():
            cursor = self.conn.execute(_CYCLE, (orjson.dumps(batch).decode(),))
            self.conn.execute(_NOTIFY)
            row = cursor.fetchone()
        assert row is not None
        answer = row[0]
        if batch["groups"] or answer["leased"]:
            self.counts["calls"] += 1
            self.counts["statements"] += 2
            self.counts["round_trips"] += 1
        else:  # an empty poll (the inbox is empty, or others hold every task): not per task
            self.counts["idle_calls"] += 1
        if answer["ready"]:
            raise RuntimeError(f"dependents became ready (outside the floor's scope): {answer}")
        self.counts["done"] += answer["done"]
        for run_id, head in answer["heads"].items():
            self.heads[run_id] = (head[0], int(head[1])) if head else (None, 0)
        kept: list[dict[str, Any]] = []
        for conflict in answer["conflicts"]:
            run_id = conflict["run_id"]
            mine = [t for t in self.held if t["run_id"] == run_id]
            if conflict["reason"] == "run_not_running":
                continue
            self.heads[run_id] = (conflict["hash"], int(conflict["pos"]))
            lost = set(conflict.get("tasks") or ())
            self.counts["lease_lost"] += len(lost)
            again = [t for t in mine if t["task_id"] not in lost]
            if conflict["reason"] == "chain_head":
                self.counts["cas_conflicts"] += 1
            self.counts["resigned"] += len(again)
            kept += again
        leased = answer["leased"]
        if leased and self.trust:
            for task in leased:
                task["cap"] = (
                    "cap_"
                    + hashlib.sha256(
                        f"{nonce}:{task['task_id']}:{task['ft']}".encode()
                    ).hexdigest()[:32]
                )
            rows = [self._mint(task, expires) for task in leased]
            if self.defer:
                self.pending_caps = rows
            else:
                self.conn.execute(_CAPS, (orjson.dumps(rows).decode(),))
                self.counts["statements"] += 1
                self.counts["round_trips"] += 1
        else:
            for task in leased:
                task["cap"] = None
        self.held = kept + leased
        return len(self.held)

    def work(self) -> tuple[float, float]:
        """Calls until nothing is held and no task came for 0.3 s; (start, last completion)."""
        start = last = time.monotonic()
        while True:
            before = self.counts["done"]
            held = self.call()
            if self.counts["done"] > before:
                last = time.monotonic()
            if held == 0:
                if time.monotonic() - last > 0.3:
                    return start, last
                time.sleep(0.01)


def main() -> None:
    dsn, worker_id, max_tasks, trust = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    lanes = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] != "0" else None
    defer = len(sys.argv) > 6 and sys.argv[6] == "defer"
    floor = Floor(dsn, worker_id, max_tasks, trust == "on", lanes, defer)
    print("ready", flush=True)
    sys.stdin.readline()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start, last = floor.work()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    floor.conn.close()  # its function statistics reach the server as the session ends
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    out = {**floor.counts, "start": start, "last": last, "cpu_s": cpu}
    print(orjson.dumps(out).decode(), flush=True)


if __name__ == "__main__":
    main()
