"""The floor of FleetForge's embedded SQLite write path under issue 20's and issue 21's guarantees.

Can the engine on SQLite reach issue 20's SQLite goals: (a) 1 worker, batched, synchronous=NORMAL
(WAL) >= 0.15x a naive SQLite WAL NORMAL claim/complete loop (``_naive_sqlite.py``), and (b) the
SDK Worker over ``FleetClient.local`` >= 0.10x that same loop (the Worker runs on top of the
engine: a floor under 0.10x puts (b) out of reach too)? This measures the least work those
guarantees leave per task, done as well as SQLite allows, in ONE process (the embedded store is
one process), the SQLite twin of ``bench_pgfloor.py``.

Per batch (as bench_fleet's batched cell: ``complete_tasks`` of the 10 tasks held +
``lease_next=10``): ONE write transaction (BEGIN IMMEDIATE .. COMMIT) that

- checks fencing inside it (every held task still leased to this worker, same token, unexpired:
  one statement over ``json_each``) and reads the chain heads of the batch's runs (one statement);
- builds each receipt as ``FleetReceipt`` dumps it, chained on its run's head and hashed, scored
  (``scoring.score``: no scorer, accepted), signed in a DSSE envelope (``trust.attest.Attestor``)
  when trust is on, and its ``receipt_recorded`` + ``step_completed`` events with
  ``fleet._events.engine_row``; the run's ``run_completed`` (outputs, signed chain head) when its
  last step completed (run_progress, kept by the schema's triggers, read in one statement);
- writes their projection rows set-based: ``executemany`` per table (tasks, receipts at the next
  chain positions, steps; the schema's triggers move run_progress and deps_open), dependents the
  receipts made ready looked up in one statement (the bench's runs have none: checked);
- leases the next 10 with the product's own ``lease_candidates`` query (inbox index walk), checks
  each task asks for nothing (no tools, labels, workspace), mints a real Biscuit capability token
  per lease with the store's root key (the token and id ``CapabilityMint`` makes: same code and
  parameters; id = the authority block's revocation id) and stores it (``capability_upsert``,
  executemany), builds ``task_leased`` with ``engine_row``, writes tasks / steps rows
  (executemany) and the worker row once;
- appends every event of the batch with ONE multi-row ``INSERT .. RETURNING seq``.

The store is the product's (``open_store``: real migrations, tables, triggers, indexes; runs
submitted by ``SyncFleetService``), synchronous=NORMAL, the floor's connection opened with the
backend's pragmas. After each cell: ``replay.verify(store) == []`` (projections == a replay of the
events: the floor wrote exactly the rows the product's projections write), every run's receipt
chain (``replay.chain_failures``), every task leased exactly once (from the log), every run
completed; trust on: a capability row per task naming the id its ``task_leased`` carries, and two
runs' bundles through ``verify`` with all its checks.

CPU per task (``time.process_time``) is split into crypto (Biscuit mints, DSSE signatures),
Python event/row building (receipts, hashes, ``engine_row``, JSON columns, parameters) and SQLite
execution (every ``execute``/``executemany``/COMMIT), the rest being the loop's glue.
``FLEETFORGE_BENCH_TASKS`` (default 5,000) tasks per cell.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from fleetforge.capabilities import capability_id, glob_regex
from fleetforge.fleet._events import Raw, engine_row, timestamp
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.scoring import score
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store
from fleetforge.fleet.store._base import canonical_json, hashed_json, iso
from fleetforge.fleet.trust.attest import Attestor
from fleetforge.fleet.trust.capabilities import KEY_NAME
from fleetforge.fleet.trust.keys import load_signing_key

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _floors import check_bundles, check_replay_and_chains, receipt_template  # noqa: E402
from _naive_sqlite import naive_rate  # noqa: E402

TASKS = int(os.environ.get("FLEETFORGE_BENCH_TASKS", 5000))
PER_RUN = 50  # bench_fleet's runs: 50 independent no-op steps
MAX_TASKS = 10
ROUNDS = int(os.environ.get("FLEETFORGE_SQLFLOOR_ROUNDS", 3))
LEASE_SECONDS = 60.0
WORKER = "w0"
PRODUCT_JSON = HERE / "results" / "fleet.json"
_UNHASHED = ("status", "score", "hash", "posted_at")
SERVICE = named_queries("service.sql")
PROJ = named_queries("projections.sql")

GOALS: dict[str, tuple[str, float]] = {
    "ratio_sqlfloor_trust_on_vs_naive_normal": (">=", 0.15),
}
NOTES: list[str] = []

# ── the floor's statements (besides the product's named queries) ─────────────────────────────

_FENCING = """
SELECT count(*) FROM json_each(:held) j CROSS JOIN tasks t  -- by key, not the leases index
  ON t.run_id = j.value ->> 0 AND t.task_id = j.value ->> 1
WHERE t.status = 'leased' AND t.fencing_token = j.value ->> 2 AND t.worker_id = :worker
  AND t.lease_expires_at >= :now
"""
_HEADS = """
SELECT r.run_id, r.status,
       (SELECT x.hash FROM receipts x WHERE x.run_id = r.run_id ORDER BY x.position DESC LIMIT 1),
       (SELECT coalesce(max(x.position), 0) FROM receipts x WHERE x.run_id = r.run_id)
FROM json_each(:runs) j JOIN runs r ON r.run_id = j.value
"""
_RECEIPT = """
INSERT INTO receipts (run_id, receipt_id, position, task_id, step_id, attempt, worker_id, status,
                      receipt, score, hash, prev_hash, posted_at, attestation)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_READY = """
SELECT count(*) FROM json_each(:done) j JOIN step_edges e
  ON e.run_id = j.value ->> 0 AND e.step_id = j.value ->> 1
"""
_LEFT = """
SELECT p.run_id, p.unfinished_steps FROM json_each(:runs) j JOIN run_progress p
  ON p.run_id = j.value
"""


def _note(text: str) -> None:
    NOTES.append(text)
    print(text, flush=True)


def _connect(path: Path) -> sqlite3.Connection:
    """A connection as the product's SQLite backend opens one (fleet/store/sqlite.py)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    for pragma in (
        "journal_mode = WAL",
        "cache_size = -65536",
        "temp_store = MEMORY",
        "synchronous = NORMAL",
        "foreign_keys = ON",
    ):
        conn.execute(f"PRAGMA {pragma}")
    return conn


class Floor:
    """The engine's whole work for one worker's batches, in one transaction each."""

    def __init__(self, path: Path, home: Path, trust: bool) -> None:
        self.conn = _connect(path)
        self.trust = trust
        self.template = receipt_template()
        self.verdict = score(None, None).model_dump(mode="json")
        self.attestor = Attestor(load_signing_key(home)) if trust else None
        self.root: Any = None
        if trust:
            import biscuit_auth

            row = self.conn.execute(
                "SELECT private_key FROM trust_keys WHERE name = ?", (KEY_NAME,)
            ).fetchone()
            if row is None:  # the store's root key, made once (CapabilityMint.load)
                pair = biscuit_auth.KeyPair()
                self.conn.execute(
                    "INSERT INTO trust_keys (name, private_key, public_key, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (KEY_NAME, pair.private_key.to_bytes().hex(),
                     pair.public_key.to_bytes().hex(), iso(datetime.now(UTC))),
                )  # fmt: skip
                key = pair.private_key.to_bytes().hex()
            else:
                key = str(row[0])
            algorithm = biscuit_auth.Algorithm.Ed25519  # type: ignore[attr-defined]
            self.root = biscuit_auth.PrivateKey.from_bytes(  # type: ignore[call-arg]
                bytes.fromhex(key), algorithm
            )
        self.held: list[dict[str, Any]] = []
        self.sql_parts: dict[str, float] = {}
        self.cpu = {"mint": 0.0, "sign": 0.0, "build": 0.0, "sql": 0.0}
        self.counts = {"batches": 0, "statements": 0, "commits": 0, "done": 0, "leased": 0,
                       "signatures": 0, "mints": 0, "events": 0}  # fmt: skip

    # ── pieces ─────────────────────────────────────────────────────────────────────────────

    def _sql(self, label: str, sql: str, params: Any = (), many: bool = False) -> list[Any]:
        t0 = time.process_time()
        if many:
            self.conn.executemany(sql, params)
            rows: list[Any] = []
        else:
            rows = self.conn.execute(sql, params).fetchall()
        spent = time.process_time() - t0
        self.cpu["sql"] += spent
        self.sql_parts[label] = self.sql_parts.get(label, 0.0) + spent
        self.counts["statements"] += 1
        return rows

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
            worker_id=WORKER,
            fencing_token=token,
            prev_hash=prev,
        )
        hashed = {k: v for k, v in body.items() if k not in _UNHASHED}
        body["hash"] = "sha256:" + hashlib.sha256(hashed_json(hashed).encode()).hexdigest()
        body["posted_at"] = timestamp(now)
        body["status"] = "accepted"
        body["score"] = self.verdict
        return body

    def _mint(self, task: dict[str, Any], expires: datetime) -> tuple[str, str]:
        """(capability id, base64 token): CapabilityMint.mint's token for a task that asks for
        no tools (grant *, allow *), by biscuit_auth directly (no FleetTaskSpec to build)."""
        import biscuit_auth

        code = "\n".join(
            [
                "run({run});",
                "task({task});",
                "grant({grant0});",
                "allow_tool({allow_tool0});",
                "check if time($t), $t <= {exp};",
                "check if operation($op), grant($re), $op.matches($re);",
                "check if operation($op), allow_tool($re), $op.matches($re);",
                "reject if operation($op), deny_tool($re), $op.matches($re);",
            ]
        )
        params = {"run": task["run_id"], "task": task["task_id"], "grant0": glob_regex("*"),
                  "allow_tool0": glob_regex("*"), "exp": expires}  # fmt: skip
        token = biscuit_auth.BiscuitBuilder(code, params).build(self.root)
        self.counts["mints"] += 1
        return capability_id(token), token.to_base64()

    # ── one batch: complete what is held, lease the next ─────────────────────────────────────

    def batch(self) -> int:
        now = datetime.now(UTC)
        at = iso(now)
        expires = now + timedelta(seconds=LEASE_SECONDS)
        expires_at = iso(expires)
        events: list[Any] = []
        self._sql("begin", "BEGIN IMMEDIATE")
        if self.held:
            self._complete(now, at, events)
        leased = self._lease(now, at, expires, expires_at, events)
        if events:
            t0 = time.process_time()
            values = ", ".join(["(?, ?, ?, ?, ?)"] * len(events))
            params: list[Any] = []
            for e in events:
                params += (e.run_id or "", e.event_id, e.type, e.at, e.data_json())
            self.cpu["build"] += time.process_time() - t0
            seqs = self._sql(
                "events",
                f"INSERT INTO events (run_id, event_id, type, at, data) VALUES {values} "
                "RETURNING seq",
                params,
            )
            if len(seqs) != len(events):
                raise AssertionError("events not appended")
            self.counts["events"] += len(events)
        self._sql("commit", "COMMIT")
        self.counts["commits"] += 1
        self.counts["batches"] += 1
        self.held = leased
        return len(leased)

    def _complete(self, now: datetime, at: str, events: list[Any]) -> None:
        held = self.held
        t0 = time.process_time()
        fence = orjson.dumps([[t["run_id"], t["task_id"], t["ft"]] for t in held]).decode()
        runs = sorted({t["run_id"] for t in held})
        runs_json = orjson.dumps(runs).decode()
        self.cpu["build"] += time.process_time() - t0
        # fencing, inside the transaction that appends
        (n,) = self._sql("fencing", _FENCING, {"held": fence, "worker": WORKER, "now": at})[0]
        if n != len(held):
            raise AssertionError(f"fencing: {n} of {len(held)} leases still held")
        heads = {
            r[0]: (r[1], r[2], int(r[3])) for r in self._sql("heads", _HEADS, {"runs": runs_json})
        }
        by_run: dict[str, list[dict[str, Any]]] = {}
        for task in held:
            by_run.setdefault(task["run_id"], []).append(task)
        task_rows: list[Any] = []
        receipt_rows: list[Any] = []
        step_rows: list[Any] = []
        chain_end: dict[str, tuple[str | None, int]] = {}
        for run_id in runs:
            status, prev, pos = heads[run_id]
            if status != "running":
                raise AssertionError(f"run {run_id} is {status}")
            for task in sorted(by_run[run_id], key=lambda t: t["task_id"]):
                t0 = time.process_time()
                receipt = self._receipt(task, prev, now)
                data: dict[str, Any] = {"receipt": Raw(receipt)}
                self.cpu["build"] += time.process_time() - t0
                if self.attestor is not None:
                    t0 = time.process_time()
                    data["attestation"] = Raw(
                        self.attestor.receipt(
                            receipt, capability_token_id=task["cap"], policy_decisions=[]
                        )
                    )
                    self.cpu["sign"] += time.process_time() - t0
                    self.counts["signatures"] += 1
                t0 = time.process_time()
                recorded = engine_row("receipt_recorded", run_id, now, data)
                completed = engine_row(
                    "step_completed", run_id, now, {"step_id": task["step_id"], "output": None}
                )
                events += (recorded, completed)
                pos += 1
                stored = recorded.data["receipt"]
                output = canonical_json(stored["result"].get("output"))
                task_rows.append((output, run_id, task["task_id"]))
                attestation = recorded.data.get("attestation")
                receipt_rows.append(
                    (run_id, stored["receipt_id"], pos, stored["task_id"], stored["step_id"],
                     stored["attempt"], WORKER, stored["status"],
                     canonical_json(stored | {"status": "pending", "score": None}),
                     canonical_json(stored["score"]), stored["hash"], stored.get("prev_hash"),
                     at, None if attestation is None else canonical_json(attestation))
                )  # fmt: skip
                step_rows.append(
                    {"run_id": run_id, "step_id": task["step_id"], "status": "completed",
                     "output": None, "failure_kind": None, "error": None, "at": at}
                )  # fmt: skip
                prev = stored["hash"]
                self.cpu["build"] += time.process_time() - t0
            chain_end[run_id] = (prev, pos)
        self._sql(
            "tasks_receipt",
            "UPDATE tasks SET output = ?, status = 'completed', lease_expires_at = NULL "
            "WHERE run_id = ? AND task_id = ?",
            task_rows,
            many=True,
        )
        self._sql("receipts", _RECEIPT, receipt_rows, many=True)
        self._sql("steps_finished", PROJ["step_finished"], step_rows, many=True)
        t0 = time.process_time()
        done = orjson.dumps([[t["run_id"], t["step_id"]] for t in held]).decode()
        self.cpu["build"] += time.process_time() - t0
        # the next steps: dependents of the completed steps (the bench's runs have none)
        (ready,) = self._sql("ready", _READY, {"done": done})[0]
        if ready:
            raise AssertionError("dependents became ready: outside the floor's scope")
        self.counts["done"] += len(held)
        # the runs' end: no unfinished step left (the schema's triggers keep the counter)
        for run_id, left in self._sql("run_progress", _LEFT, {"runs": runs_json}):
            if left:
                continue
            rows = self._sql("run_outputs", PROJ_OUTPUTS, {"run_id": run_id})
            t0 = time.process_time()
            outputs = {r[0]: None if r[1] is None else orjson.loads(r[1]) for r in rows}
            self.cpu["build"] += time.process_time() - t0
            head = None
            if self.attestor is not None:
                t0 = time.process_time()
                last, count = chain_end[run_id]
                head = {"receipts": count, "head": last, "key_id": self.attestor.key_id,
                        "attestation": self.attestor.chain_head(
                            run_id, last, count, "run_completed", at)}  # fmt: skip
                self.cpu["sign"] += time.process_time() - t0
                self.counts["signatures"] += 1
            t0 = time.process_time()
            final = engine_row("run_completed", run_id, now, {"outputs": outputs,
                                                               "chain_head": head})  # fmt: skip
            events.append(final)
            params = {"run_id": run_id, "status": "completed", "at": at, "error": None,
                      "outputs": canonical_json(outputs)}  # fmt: skip
            self.cpu["build"] += time.process_time() - t0
            self._sql("run_finished", PROJ["run_finished"], params)

    def _lease(
        self, now: datetime, at: str, expires: datetime, expires_at: str, events: list[Any]
    ) -> list[dict[str, Any]]:
        rows = self._sql(
            "lease_candidates",
            SERVICE["lease_candidates"],
            {"now": at, "role": None, "rank": 0, "has_key": 0, "limit": MAX_TASKS},
        )
        if not rows:
            return []
        t0 = time.process_time()
        chosen = []
        for r in rows:
            spec = orjson.loads(r[7])
            worker = spec.get("worker") or {}
            # what leasing._matches checks: the floor's tasks ask for nothing
            if worker.get("tools") or worker.get("labels") or spec.get("workspace"):
                raise AssertionError("a task with needs: outside the floor's scope")
            chosen.append(
                {"run_id": r[0], "task_id": r[1], "step_id": r[2], "entry_id": r[4],
                 "attempt": int(r[5]), "ft": int(r[9]) + 1, "cap": None}
            )  # fmt: skip
        self.cpu["build"] += time.process_time() - t0
        cap_rows = []
        if self.root is not None:
            t0 = time.process_time()
            for task in chosen:
                task["cap"], token = self._mint(task, expires)
                cap_rows.append((task["task_id"], task["run_id"], task["ft"], task["cap"], token,
                                 expires_at))  # fmt: skip
            self.cpu["mint"] += time.process_time() - t0
        t0 = time.process_time()
        chosen.sort(key=lambda t: (t["run_id"], t["step_id"], t["task_id"]))
        task_rows = []
        step_rows = []
        for task in chosen:
            event = engine_row(
                "task_leased",
                task["run_id"],
                now,
                {"task_id": task["task_id"], "entry_id": task["entry_id"],
                 "attempt": task["attempt"], "worker_id": WORKER, "fencing_token": task["ft"],
                 "expires_at": expires, "step_id": task["step_id"], "credential": None,
                 "capability_id": task["cap"], "policy": None},
            )  # fmt: skip
            events.append(event)
            task_rows.append(
                {"worker_id": WORKER, "fencing_token": task["ft"], "credential": None,
                 "at": at, "expires_at": expires_at, "run_id": task["run_id"],
                 "task_id": task["task_id"]}
            )  # fmt: skip
            step_rows.append(
                {"run_id": task["run_id"], "step_id": task["step_id"],
                 "attempt": task["attempt"], "task_ids": canonical_json([task["task_id"]]),
                 "at": at}
            )  # fmt: skip
        self.cpu["build"] += time.process_time() - t0
        if cap_rows:
            self._sql("capabilities", CAPABILITY_UPSERT, cap_rows, many=True)
        self._sql("tasks_leased", PROJ["task_leased"], task_rows, many=True)
        self._sql("steps_leased", PROJ["step_lease_single"], step_rows, many=True)
        self._sql("worker", PROJ["worker_seen"], {"worker_id": WORKER, "status": "busy", "at": at})
        self.counts["leased"] += len(chosen)
        return chosen

    def work(self) -> tuple[float, float]:
        """Batches until nothing is left; (wall seconds, CPU seconds)."""
        wall, cpu = time.perf_counter(), time.process_time()
        while self.batch():
            pass
        return time.perf_counter() - wall, time.process_time() - cpu


PROJ_OUTPUTS = SERVICE["step_outputs"]
CAPABILITY_UPSERT = (
    "INSERT INTO task_capabilities (task_id, run_id, fencing_token, capability_id, token, "
    "expires_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET "
    "run_id = excluded.run_id, fencing_token = excluded.fencing_token, "
    "capability_id = excluded.capability_id, token = excluded.token, "
    "expires_at = excluded.expires_at"
)


def _submit(path: Path) -> None:
    with open_store(f"sqlite:///{path}?synchronous=normal") as store:
        fleet = SyncFleetService(store)
        spec = {
            "name": "bench",
            "seed": 1,
            "steps": [{"id": f"s{i}", "type": "tool", "tool": "noop"} for i in range(PER_RUN)],
        }
        for _ in range(-(-TASKS // PER_RUN)):
            fleet.submit_run(spec)
        fleet.register_worker({"worker_id": WORKER})


def _checks(path: Path, trust: bool, home: Path) -> None:
    """What the guarantees need of what the floor wrote (raises when one fails)."""
    with open_store(f"sqlite:///{path}") as store:
        check_replay_and_chains(store)
        with store.backend.read() as tx:
            leased = tx.fetchone(
                "SELECT count(*), count(DISTINCT json_extract(data, '$.task_id')) FROM events "
                "WHERE type = 'task_leased'"
            )
            runs = tx.fetchone("SELECT sum(status = 'completed'), count(*) FROM runs")
            receipts = tx.fetchone("SELECT count(*) FROM receipts")
            tokens = tx.fetchone(
                "SELECT count(*), sum(c.capability_id = (SELECT json_extract(e.data, "
                "'$.capability_id') FROM events e WHERE e.type = 'task_leased' AND e.run_id = "
                "c.run_id AND json_extract(e.data, '$.task_id') = c.task_id "
                "ORDER BY e.seq DESC LIMIT 1)) FROM task_capabilities c"
            )
            run_ids = [r[0] for r in tx.fetchall("SELECT run_id FROM runs ORDER BY run_id LIMIT 2")]
        assert leased is not None
        assert runs is not None
        assert receipts is not None
        assert tokens is not None
        if not (int(leased[0]) == int(leased[1]) == TASKS):
            raise AssertionError(f"task_leased {leased[0]} for {leased[1]} tasks of {TASKS}")
        if int(runs[0]) != int(runs[1]) or int(receipts[0]) != TASKS:
            raise AssertionError(f"runs completed {runs}, receipts {receipts[0]}")
        expected = TASKS if trust else 0
        if not (int(tokens[0]) == int(tokens[1] or 0) == expected):
            raise AssertionError(f"capability rows {tokens}, expected {expected}")
        if trust:
            check_bundles(store, run_ids, home)
    print(
        f"  checks passed: replay == projections, {int(runs[1])} chains intact, {TASKS} tasks "
        "leased once each, every run completed"
        + (
            ", a capability row per task naming its lease's id, 2 runs' bundles verify"
            if trust
            else ""
        ),
        flush=True,
    )


def _cell(tmp: Path, name: str, trust: bool, home: Path) -> dict[str, float]:
    path = tmp / f"{name}.db"
    _submit(path)
    floor = Floor(path, home, trust)
    floor.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the submission's WAL is not ours
    written = _written()
    wall, cpu = floor.work()
    written = _written() - written
    floor.conn.close()
    if floor.counts["done"] != TASKS or floor.counts["leased"] != TASKS:
        raise AssertionError(f"floor: {floor.counts}")
    _checks(path, trust, home)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    prefix = f"sqlfloor_trust_{'on' if trust else 'off'}"
    c = floor.counts
    parts = floor.cpu
    figures = {
        f"{prefix}_tasks_per_s": TASKS / wall,
        f"{prefix}_cpu_us_per_task": 1e6 * cpu / TASKS,
        f"{prefix}_cpu_crypto_us_per_task": 1e6 * (parts["mint"] + parts["sign"]) / TASKS,
        f"{prefix}_cpu_mint_us_per_task": 1e6 * parts["mint"] / TASKS,
        f"{prefix}_cpu_sign_us_per_task": 1e6 * parts["sign"] / TASKS,
        f"{prefix}_cpu_build_us_per_task": 1e6 * parts["build"] / TASKS,
        f"{prefix}_cpu_sqlite_us_per_task": 1e6 * parts["sql"] / TASKS,
        f"{prefix}_cpu_other_us_per_task": 1e6 * (cpu - sum(parts.values())) / TASKS,
        f"{prefix}_bytes_written_per_task": written / TASKS,
        f"{prefix}_statements_per_task": c["statements"] / TASKS,
        f"{prefix}_commits_per_task": c["commits"] / TASKS,
        f"{prefix}_events_per_task": c["events"] / TASKS,
        f"{prefix}_signatures_per_task": c["signatures"] / TASKS,
        f"{prefix}_mints_per_task": c["mints"] / TASKS,
    }
    for label, spent in sorted(floor.sql_parts.items(), key=lambda kv: -kv[1]):
        figures[f"{prefix}_sqlite_{label}_us_per_task"] = 1e6 * spent / TASKS
    for key, value in figures.items():
        print(f"  {key} = {value:,.3f}", flush=True)
    return figures


def _written() -> int:
    """Bytes this process wrote so far (write syscalls: the WAL and checkpoints), /proc/self/io."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def _naive(tmp: Path, i: int) -> tuple[float, float, float]:
    """(jobs/s, CPU us per job, bytes written per job) of the naive WAL NORMAL loop, in this
    process (the CPU and bytes include its fill of the queue)."""
    cpu, written = time.process_time(), _written()
    rate = naive_rate(tmp / f"naive{i}.db", "NORMAL", TASKS)
    return rate, 1e6 * (time.process_time() - cpu) / TASKS, (_written() - written) / TASKS


def _product(figures: dict[str, float]) -> dict[str, float]:
    if not PRODUCT_JSON.exists():
        _note(f"no {PRODUCT_JSON}: run `python benchmarks/run.py fleet` for the product's figure")
        return {}
    record = json.loads(PRODUCT_JSON.read_text())
    keys = ("sdk_worker_c4_local_vs_naive_sqlite_normal_ratio",)
    out = {f"product_{k}": float(record["figures"][k]) for k in keys if k in record["figures"]}
    if out:
        _note(f"product figures from {PRODUCT_JSON} ({record['when']}), another sitting")
    return out


def run() -> dict[str, float]:
    NOTES.clear()
    home = Path(tempfile.mkdtemp(prefix="fleetforge-sqlfloor-"))
    load_signing_key(home)  # the fleet key receipts are signed with
    figures: dict[str, float] = {"tasks": float(TASKS), "load_1m_start": os.getloadavg()[0]}
    naive: list[tuple[float, float, float]] = []
    cells: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="fleetforge-sqlfloor-") as name:
        tmp = Path(name)
        # interleaved: naive, floor on, floor off, naive, ... naive; each cell's ratio is over
        # the mean of the naive runs just before and just after it
        for round_ in range(ROUNDS + 1):
            naive.append(_naive(tmp, round_))
            print(f"naive WAL NORMAL: {naive[-1][0]:,.0f} jobs/s, {naive[-1][1]:,.1f} us CPU/job",
                  flush=True)  # fmt: skip
            if round_ == ROUNDS:
                break
            for key in ("on", "off"):
                print(f"sqlfloor: trust {key} (round {round_ + 1})", flush=True)
                cells[key].append(_cell(tmp, f"floor_{key}_{round_}", key == "on", home))
    naive_cpu = statistics.median(c for _, c, _ in naive)
    figures["naive_sqlite_normal_jobs_per_s"] = statistics.median(r for r, _, _ in naive)
    figures["naive_sqlite_normal_jobs_per_s_min"] = min(r for r, _, _ in naive)
    figures["naive_sqlite_normal_jobs_per_s_max"] = max(r for r, _, _ in naive)
    figures["naive_sqlite_normal_bytes_written_per_job"] = statistics.median(b for _, _, b in naive)
    figures["naive_sqlite_normal_cpu_us_per_job"] = naive_cpu
    for key, runs in cells.items():
        prefix = f"sqlfloor_trust_{key}"
        ratios = [
            run[f"{prefix}_tasks_per_s"] / ((naive[i][0] + naive[i + 1][0]) / 2)
            for i, run in enumerate(runs)
        ]
        # every figure: the median over the rounds
        for metric in runs[0]:
            figures[metric] = statistics.median(run.get(metric, 0.0) for run in runs)
        figures[f"ratio_{prefix}_vs_naive_normal"] = statistics.median(ratios)
        figures[f"ratio_{prefix}_vs_naive_normal_min"] = min(ratios)
        figures[f"ratio_{prefix}_vs_naive_normal_max"] = max(ratios)
        # load-independent: CPU per naive job / CPU per floor task (both in this process)
        figures[f"ratio_{prefix}_cpu_bound_vs_naive_normal"] = (
            naive_cpu / figures[f"{prefix}_cpu_us_per_task"]
        )
    on = figures["sqlfloor_trust_on_cpu_us_per_task"]
    _note(
        f"naive loop median {figures['naive_sqlite_normal_jobs_per_s']:,.0f} jobs/s over "
        f"{len(naive)} runs interleaved with the cells, {naive_cpu:,.1f} us CPU/job; at the CPU "
        f"bound goal (a) 0.15x allows {naive_cpu / 0.15:,.0f} us CPU per task and goal (b) 0.10x "
        f"{naive_cpu / 0.10:,.0f} us (engine + SDK Worker + client); the floor with trust on "
        f"spends {on:,.0f} us (crypto "
        f"{figures['sqlfloor_trust_on_cpu_crypto_us_per_task']:,.0f}, building "
        f"{figures['sqlfloor_trust_on_cpu_build_us_per_task']:,.0f}, SQLite "
        f"{figures['sqlfloor_trust_on_cpu_sqlite_us_per_task']:,.0f}, glue "
        f"{figures['sqlfloor_trust_on_cpu_other_us_per_task']:,.0f}), with trust off "
        f"{figures['sqlfloor_trust_off_cpu_us_per_task']:,.0f}"
    )
    figures |= _product(figures)
    figures["load_1m_end"] = os.getloadavg()[0]
    return figures


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k} = {v:,.3f}")
