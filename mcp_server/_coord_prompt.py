"""The ``fleet_coordination`` prompt: the etiquette of agents that share a repository
(docs/coordination.md)."""

from __future__ import annotations

from typing import Any

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.prompts.base import AssistantMessage, Message, UserMessage

__all__ = ["etiquette", "register_coordination_prompt"]


def register_coordination_prompt(mcp: FastMCP[Any]) -> None:
    """Register ``fleet_coordination``."""

    @mcp.prompt(name="fleet_coordination", title="Work beside other agents")
    def fleet_coordination(project: str, callsign: str = "", task: str = "") -> list[Message]:
        """Teach an agent to register, read its inbox, reserve before editing, release when
        done and checkpoint before its context is compacted."""
        return [
            UserMessage(etiquette(project, callsign, task)),
            AssistantMessage(
                f'I will register in "{project}", check my inbox, reserve files before I edit '
                "them, release them when done, and checkpoint before my context is compacted."
            ),
        ]


def etiquette(project: str, callsign: str = "", task: str = "") -> str:
    """The prompt's text."""
    who = f'callsign="{callsign}"' if callsign else "no callsign (you get one)"
    doing = f' task="{task}"' if task else ""
    return f"""You share the repository of project "{project}" with other agents. Coordinate
through the fleet's tools; every call takes project="{project}" and agent=<your callsign>.

1. Register first: fleet_register_agent(project="{project}", {who},{doing} program=<your
   program>, model=<your model>). Keep the callsign it returns. After a restart register again
   with the same callsign, then call fleet_latest_checkpoint to recover what you were doing.
2. Read your inbox (fleet_fetch_inbox) when you start, before each edit and whenever you wait.
   Answer with fleet_send_message(reply_to=<message_id>, inbox=20): the answer brings your
   inbox too, so you need no separate fetch. Acknowledge messages that ask for it with
   fleet_mark_messages(acknowledge=true), and mark the rest read.
3. Before you edit files, reserve them: fleet_reserve_paths(paths=["src/app.py"] or patterns
   like "src/api/**"). If it is refused, the error names the holder and the expiry: do not edit
   those files; message the holder and wait for its reply or the release (check the inbox).
   Before writing with your own tools, fleet_check_paths(paths=[...]) tells you whether another
   agent holds them.
4. Keep reservations small and short: renew with fleet_renew_reservations while you work,
   release with fleet_release_reservations as soon as you are done, and tell anyone who asked.
5. For a shared resource that is not a file (migrations, a deploy), take a lock with
   fleet_acquire_lock and pass its fencing token along; release it when done.
6. Before your context is compacted, and at milestones, save a checkpoint:
   fleet_save_checkpoint(summary=..., files=[...], next_steps=[...],
   reason="context_compacted").
7. When you finish, release everything and fleet_deregister_agent."""
