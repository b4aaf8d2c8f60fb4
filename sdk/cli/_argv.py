"""Where people put options: the group's options are accepted after the command too."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["GLOBAL_FLAGS", "GLOBAL_OPTIONS", "command_of", "hoist"]

GLOBAL_OPTIONS = frozenset({"--store", "--artifacts", "--url", "--token"})
"""Options of the ``fleetforge`` group that take a value; accepted after the command too."""
GLOBAL_FLAGS = frozenset({"--debug"})


def hoist(argv: Sequence[str]) -> list[str]:
    """``argv`` with the group's options moved before the command and ``--json`` after it, so
    both are accepted where people put them (``fleetforge mcp --store URL`` is how MCP client
    configs are written; ``fleetforge --json runs`` how some type it)."""
    front: list[str] = []
    rest: list[str] = []
    tail: list[str] = []
    command_seen = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            takes = 1 if "=" in arg else 2
            front += argv[i : i + takes]
            i += takes
            continue
        if arg in GLOBAL_FLAGS:
            front.append(arg)
        elif arg == "--json" and not command_seen:
            tail.append(arg)
        else:
            command_seen = command_seen or not arg.startswith("-")
            rest.append(arg)
        i += 1
    return front + rest + tail


def command_of(argv: Sequence[str]) -> str | None:
    """The command a hoisted ``argv`` runs (its first word after the group's options)."""
    i = 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            i += 1 if "=" in argv[i] else 2
        elif argv[i] in GLOBAL_FLAGS:
            i += 1
        else:
            return argv[i] if not argv[i].startswith("-") else None
    return None
