"""Two scripted agents share one repository folder and coordinate through the fleet.

Each agent talks to its own ``fleetforge mcp`` (over stdio, the way Claude Code or Cursor would)
and writes files through its own armory ``workspace`` server, which knows who it is
(``FLEETFORGE_AGENT``) and refuses a write to a file another agent has reserved. Ann reserves
``src/app.py`` and edits it; Bob's write is refused, so he messages Ann and waits; Ann finishes,
releases the file and tells him; Bob reserves it and makes his edit. Offline and deterministic
(the agents take turns in a fixed order):

    python examples/pair_coding/pair_coding.py [WORKDIR]

It prints the exchange as it happens, then the coordination events from the fleet's log.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from fleetforge.client import FleetClient
from fleetforge.errors import ConflictError
from fleetforge.fleet.store import open_store

PROJECT = "pair-coding"
APP = "src/app.py"
COORDINATION = (
    "agent_registered",
    "reservation_granted",
    "reservation_released",
    "message_sent",
    "message_read",
    "message_acknowledged",
)


class Agent:
    """One scripted agent: its fleet client, its workspace session and its transcript."""

    def __init__(self, callsign: str, fleet: FleetClient, files: ClientSession, say: Any) -> None:
        self.callsign = callsign
        self.fleet = fleet
        self.files = files
        self.say = say

    async def write(self, path: str, content: str) -> str | None:
        """Write through the workspace pack; the refusal's text when it is refused."""
        result = await self.files.call_tool("write", {"path": path, "content": content})
        if result.isError:
            text = str(getattr(result.content[0], "text", "refused"))
            return text.removeprefix("Error executing tool write: ")
        return None

    async def inbox(self) -> list[Any]:
        page = await self.fleet.fetch_inbox(PROJECT, self.callsign, unread_only=True)
        if page.messages:
            ids = [m.message_id for m in page.messages]
            await self.fleet.mark_messages(PROJECT, self.callsign, ids, acknowledge=True)
        return page.messages


@asynccontextmanager
async def agent(
    stack: AsyncExitStack, callsign: str, repo: Path, env: dict[str, str], say: Any
) -> AsyncIterator[Agent]:
    fleet = await stack.enter_async_context(FleetClient.stdio(env=env))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "fleetforge.armory.workspace", "--root", str(repo)],
        env={**env, "FLEETFORGE_AGENT": callsign, "FLEETFORGE_PROJECT": PROJECT},
    )
    read, write = await stack.enter_async_context(stdio_client(params))
    files = await stack.enter_async_context(ClientSession(read, write))
    await files.initialize()
    await fleet.register_agent(PROJECT, callsign=callsign, program="pair_coding.py")
    yield Agent(callsign, fleet, files, say)


async def pair(workdir: Path) -> list[str]:
    """Run the exchange in ``workdir``; return the transcript (also printed)."""
    lines: list[str] = []

    def say(who: str, text: str) -> None:
        lines.append(f"{who}: {text}")
        print(lines[-1], flush=True)

    repo = workdir / "repo"
    (repo / "src").mkdir(parents=True, exist_ok=True)
    (repo / APP).write_text("def main():\n    pass\n")
    store = f"sqlite:///{workdir / 'fleet.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETFORGE_")}
    env |= {"FLEETFORGE_STORE": store, "FLEETFORGE_HOME": str(workdir / "home")}
    async with AsyncExitStack() as stack:
        ann = await stack.enter_async_context(agent(stack, "Ann", repo, env, say))
        bob = await stack.enter_async_context(agent(stack, "Bob", repo, env, say))

        await ann.fleet.reserve_paths(PROJECT, "Ann", [APP], reason="add a greeting")
        say("Ann", f"reserved {APP}")
        assert await ann.write(APP, "def main():\n    print('hello')\n") is None
        say("Ann", f"edited {APP}")

        refused = await bob.write(APP, "def main():\n    print('bye')\n")
        assert refused is not None
        assert "reserved by Ann" in refused, refused
        say("Bob", f"write refused: {refused}")
        try:
            await bob.fleet.reserve_paths(PROJECT, "Bob", [APP])
        except ConflictError as exc:
            say("Bob", f"reservation refused: {exc.message}")
        ask = await bob.fleet.send_message(
            PROJECT, "Bob", ["Ann"], f"{APP}", f"May I edit `{APP}` after you?", ack_required=True
        )
        say("Bob", f"asked Ann ({ask.message_id})")

        for message in await ann.inbox():
            say("Ann", f"read from {message.sender}: {message.body}")
        await ann.fleet.release_reservations(PROJECT, "Ann", paths=[APP])
        await ann.fleet.send_message(
            PROJECT,
            "Ann",
            ["Bob"],
            f"Re: {APP}",
            f"Done: `{APP}` is yours.",
            reply_to=ask.message_id,
        )
        say("Ann", f"released {APP} and told Bob")

        released = False
        while not released:  # Bob waits for the release message
            for message in await bob.inbox():
                say("Bob", f"read from {message.sender}: {message.body}")
                released = message.reply_to == ask.message_id
        await bob.fleet.reserve_paths(PROJECT, "Bob", [APP], reason="add a farewell")
        assert await bob.write(APP, "def main():\n    print('hello')\n    print('bye')\n") is None
        say("Bob", f"reserved and edited {APP}")
        await bob.fleet.release_reservations(PROJECT, "Bob")
        say("Bob", "released everything")

    with open_store(store) as opened:
        print("\nthe fleet's log:")
        names: dict[str, str] = {}
        for row in opened.iter_rows():
            if row.type == "agent_registered":
                names[row.data["agent_id"]] = row.data["callsign"]
            if row.type in COORDINATION:
                who = names.get(row.data["agent_id"], row.data["agent_id"])
                print(f"  {row.seq:>3} {row.type:<22} {who}")
    return lines


def main(argv: list[str]) -> int:
    if argv:
        anyio.run(pair, Path(argv[0]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(pair, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
