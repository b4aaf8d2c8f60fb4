"""The armory (issue 9's goal): opening a pack, and a tool call through the kit beside the same
call on a bare MCP client session to the same kind of server.

Server: the built-in ``workspace`` pack's stdio server; call: ``read`` of a small file. The kit
call adds the grant check, the ``execute_tool`` span (no SDK installed here: the API's no-op)
and the recorder (a list append, as an adapter's emit would queue it). Medians of interleaved
calls. Goal: kit call <= 1.2x the bare call (the SDK's stock ClientSession); also shown beside a
bare FleetClientSession, which like the kit compiles the output schema once.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

from fleetforge import armory
from fleetforge.client import FleetClientSession

QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
CALLS = 200 if QUICK else 1000
OPENS = 3 if QUICK else 8

GOALS: dict[str, tuple[str, float]] = {"kit_call_ratio": ("<=", 1.2)}


async def _measure(root: str) -> dict[str, float]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    os.environ["FLEETFORGE_WORKSPACE"] = root
    (Path(root) / "note.md").write_text("hello\n")
    pack = armory.get_pack("workspace")

    opens = []
    for _ in range(OPENS):
        start = time.perf_counter()
        async with armory.open([pack]) as kit:
            kit.available()
            opens.append((time.perf_counter() - start) * 1000)

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "fleetforge.armory.workspace", "--root", root]
    )
    recorded: list[object] = []
    bare_ms, cached_ms, kit_ms = [], [], []
    args = {"path": "note.md"}
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as bare,
        stdio_client(params) as (read2, write2),
        FleetClientSession(read2, write2) as cached,
        armory.open([pack], recorder=lambda kind, data: recorded.append(data)) as kit,
    ):
        await bare.initialize()
        await cached.initialize()
        for _ in range(50):  # warm-up
            await bare.call_tool("read", args)
            await cached.call_tool("read", args)
            await kit.call("workspace.read", args)
        for _ in range(CALLS):
            for session, times in ((bare, bare_ms), (cached, cached_ms)):
                start = time.perf_counter()
                await session.call_tool("read", args)
                times.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            await kit.call("workspace.read", args)
            kit_ms.append((time.perf_counter() - start) * 1000)
    bare_p50, cached_p50 = statistics.median(bare_ms), statistics.median(cached_ms)
    kit_p50 = statistics.median(kit_ms)
    return {
        "open_pack_and_list_ms": statistics.median(opens),
        "bare_call_ms": bare_p50,
        "bare_cached_schema_call_ms": cached_p50,
        "kit_call_ms": kit_p50,
        "kit_call_ratio": kit_p50 / bare_p50,
        "kit_vs_cached_schema_ratio": kit_p50 / cached_p50,
        "cpus": float(os.cpu_count() or 0),
    }


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="fleetforge-bench-armory-") as root:
        return anyio.run(_measure, root)
