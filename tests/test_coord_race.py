"""8 processes race for overlapping reservations, on both stores: never two exclusive holders of
one path at once, checked from the event log afterwards. And the overlap rule is conservative:
two patterns it calls disjoint never match one path.

Each racer is this module run as a program (``python -m tests.test_coord_race URL N``): it
registers, says ``ready``, waits for ``go`` on stdin, then reserves random overlapping patterns,
holds each for a call, and releases it.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fleetforge.errors import ConflictError
from fleetforge.fleet.coord.paths import matches, normalize_pattern, overlap
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventRow, open_store

ROOT = Path(__file__).parent.parent
PROCESSES = 8
ROUNDS = 25
PROJECT = "race"
PATTERNS = [
    "src/**",
    "src/app.py",
    "src/*.py",
    "src/app*",
    "src/lib/",
    "**/*.py",
    "docs/**",
    "README.md",
    "src/lib/x.py",
    "*.md",
]
PATHS = [
    "src/app.py",
    "src/app.md",
    "src/lib/x.py",
    "src/lib/y.txt",
    "docs/a.md",
    "README.md",
    "tests/t.py",
    "src/b.py",
]


def racer(url: str, index: int) -> None:
    name = f"Racer{index}"
    with open_store(url) as store:
        coord = SyncFleetService(store).coord
        coord.register_agent(PROJECT, callsign=name)
        print("ready", flush=True)
        sys.stdin.readline()
        rnd = random.Random(index)
        granted = refused = 0
        for _ in range(ROUNDS):
            wanted = rnd.sample(PATTERNS, rnd.choice((1, 2)))
            try:
                coord.reserve_paths(PROJECT, name, wanted, ttl_seconds=120)
            except ConflictError:
                refused += 1
                continue
            granted += 1
            coord.check_paths(PROJECT, PATHS, agent=name)  # hold it across another call
            coord.release_reservations(PROJECT, name)
        print(granted, refused, flush=True)


def violations(rows: Sequence[EventRow]) -> list[str]:
    """Every moment the log shows two agents holding one path exclusively."""
    live: dict[str, tuple[str, str, datetime]] = {}  # reservation -> agent, pattern, expiry
    bad: list[str] = []
    for row in rows:
        d = row.data
        at = datetime.fromisoformat(row.at)
        if row.type == "reservation_granted" and d["exclusive"]:
            for path in PATHS:
                if not matches(d["pattern"], path):
                    continue
                for rid, (agent, pattern, expires) in live.items():
                    if agent != d["agent_id"] and expires > at and matches(pattern, path):
                        bad.append(f"seq {row.seq}: {path} held by {rid} and {d['reservation_id']}")
            live[d["reservation_id"]] = (
                d["agent_id"],
                d["pattern"],
                datetime.fromisoformat(d["expires_at"]),
            )
        elif row.type in ("reservation_released", "reservation_expired"):
            live.pop(d["reservation_id"], None)
    return bad


def test_racing_processes_never_hold_one_path_exclusively_at_once(store_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.test_coord_race", store_url, str(i)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    try:
        for proc in procs:  # all registered: go together
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=240)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert [proc.returncode for proc in procs] == [0] * PROCESSES, outputs
    granted = sum(int(o.split()[0]) for o in outputs)
    refused = sum(int(o.split()[1]) for o in outputs)
    assert granted > PROCESSES  # both paths were exercised
    assert refused > 0
    with open_store(store_url) as store:
        rows = list(store.iter_rows())
        assert violations(rows) == []
        assert sum(r.type == "reservation_granted" for r in rows) >= granted
        assert verify(store) == []


def test_the_log_check_catches_two_exclusive_holders() -> None:
    def granted(seq: int, rid: str, agent: str, pattern: str) -> EventRow:
        data = {
            "reservation_id": rid,
            "agent_id": agent,
            "pattern": pattern,
            "exclusive": True,
            "expires_at": "2026-01-01T01:00:00Z",
        }
        return EventRow(
            seq, f"e{seq}", None, "reservation_granted", "2026-01-01T00:00:00+00:00", data
        )

    released = EventRow(
        3, "e3", None, "reservation_released", "2026-01-01T00:00:01+00:00", {"reservation_id": "r1"}
    )
    assert violations([granted(1, "r1", "a", "src/**"), granted(2, "r2", "b", "src/app.py")])
    assert not violations(
        [granted(1, "r1", "a", "src/**"), released, granted(4, "r2", "b", "src/app.py")]
    )
    assert not violations([granted(1, "r1", "a", "src/**"), granted(2, "r2", "a", "src/app.py")])


_SEGMENT = st.sampled_from(["src", "lib", "app.py", "a.md", "x", "*", "*.py", "a*", "?", "**"])
_PATH_SEGMENT = st.sampled_from(["src", "lib", "app.py", "a.md", "x", "b.py", "ab"])


@given(
    a=st.lists(_SEGMENT, min_size=1, max_size=4),
    b=st.lists(_SEGMENT, min_size=1, max_size=4),
    paths=st.lists(st.lists(_PATH_SEGMENT, min_size=1, max_size=5), min_size=1, max_size=30),
)
def test_patterns_called_disjoint_never_match_one_path(
    a: list[str], b: list[str], paths: list[list[str]]
) -> None:
    pa, pb = normalize_pattern("/".join(a)), normalize_pattern("/".join(b))
    if overlap(pa, pb):
        return
    for parts in paths:
        path = "/".join(parts)
        assert not (matches(pa, path) and matches(pb, path)), (pa, pb, path)


if __name__ == "__main__":
    racer(sys.argv[1], int(sys.argv[2]))
