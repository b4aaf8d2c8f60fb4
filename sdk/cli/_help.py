"""How ``fleetforge ... --help`` reads: an example under every command, flags without a type.

Each command's help ends with an example (``EXAMPLES``, keyed by the command's path); a test
checks that every command has one and that each example parses. Typer shows the type of every
option, so a flag read ``--wait <bool>`` as if it took a value: flags show none here.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperOption

__all__ = ["EXAMPLES", "add_examples", "flags_show_no_type"]

EXAMPLES: dict[str, list[str]] = {
    "validate": ["fleetforge validate --tree examples/hello_fleet/run_spec.json"],
    "schemas list": ["fleetforge schemas list"],
    "schemas show": ["fleetforge schemas show run_spec"],
    "submit": ["fleetforge submit run.json --wait --timeout 600"],
    "runs": ["fleetforge runs --status failed --label team=demo"],
    "show": [
        "fleetforge show run_01M82TAAV3AZ36GNZDTDKMW2JH",
        "fleetforge show run_01M82TAAV3AZ36GNZDTDKMW2JH --url http://h:8765/mcp --token ffk_...",
    ],
    "output": ["fleetforge output run_01M82TAAV3AZ36GNZDTDKMW2JH write"],
    "cancel": ["fleetforge cancel run_01M82TAAV3AZ36GNZDTDKMW2JH --reason 'wrong topic'"],
    "resume": ["fleetforge resume run_01M82TAAV3AZ36GNZDTDKMW2JH --value '\"yes\"'"],
    "approve": ["fleetforge approve run_01M82TAAV3AZ36GNZDTDKMW2JH review --comment 'ship it'"],
    "retry": [
        "fleetforge retry run_01M82TAAV3AZ36GNZDTDKMW2JH write",
        "fleetforge retry --dead-letters",
    ],
    "dead-letters": ["fleetforge dead-letters --inputs --limit 20"],
    "alerts list": ["fleetforge alerts list --status dead"],
    "alerts test": ["fleetforge alerts test --policy oncall"],
    "alerts retry": ["fleetforge alerts retry alrt_01M82TAAV3AZ36GNZDTDKMW2JH"],
    "alerts run": ["fleetforge alerts run"],
    "workers": ["fleetforge workers --json"],
    "work": ["fleetforge work --exit-when-idle --exec 'tr a-z A-Z'"],
    "worker": [
        "fleetforge worker my_agents:shout --exit-when-idle",
        "fleetforge worker my_agents:shout --url http://127.0.0.1:8765/mcp --token ffk_...",
    ],
    "events": ["fleetforge events run_01M82TAAV3AZ36GNZDTDKMW2JH --type task_event --limit 20"],
    "replay": ["fleetforge replay --verify"],
    "artifacts put": ["fleetforge artifacts put notes.md --media-type text/markdown"],
    "artifacts get": ["fleetforge artifacts get sha256:5891b5b5... --output notes.md"],
    "db info": ["fleetforge db info"],
    "db export": ["fleetforge db export fleet.jsonl"],
    "db import": ["fleetforge --store postgresql://fleet@db/fleet db import fleet.jsonl"],
    "mcp": ["fleetforge mcp --store sqlite:////abs/path/fleet.db --log-level INFO"],
    "serve": ["fleetforge serve --port 8765"],
    "ui": ["fleetforge ui", "fleetforge ui --port 0 --no-open"],
    "top": ["fleetforge top", "fleetforge --url http://fleet:8765/mcp top"],
    "token create": [
        "fleetforge token create worker-1 --scope work --worker-id worker-1",
        "fleetforge token create worker-2 --scope work --trust-level internal --public-key KEY",
    ],
    "token list": ["fleetforge token list --revoked"],
    "token revoke": ["fleetforge token revoke worker-1"],
    "token revoke-capability": [
        "fleetforge token revoke-capability cap_0123456789abcdef0123456789abcdef --reason leaked"
    ],
    "keys init": ["fleetforge keys init", "fleetforge keys init --name serve-2"],
    "keys list": ["fleetforge keys list --json"],
    "keys rotate": ["fleetforge keys rotate"],
    "keys export-public": ["fleetforge keys export-public trust.json"],
    "verify": [
        "fleetforge verify run_01J9Z3",
        "fleetforge verify run.bundle.json --trust trust.json",
    ],
    "export": ["fleetforge export run_01J9Z3 --bundle run.bundle.json --aibom run.cdx.json"],
    "armory list": ["fleetforge armory list"],
    "armory show": ["fleetforge armory show workspace"],
    "armory check": ["fleetforge armory check workspace"],
    "demo": ["fleetforge demo --seed 7"],
    "agents register": ["fleetforge agents register --callsign BlueFalcon --program claude-code"],
    "agents deregister": ["fleetforge agents deregister --as BlueFalcon"],
    "mail send": [
        "fleetforge mail send --as BlueFalcon --to GreenWren --subject 'src/app.py' "
        "--body 'May I have it?' --ack"
    ],
    "mail inbox": ["fleetforge mail inbox --as GreenWren --unread"],
    "mail read": ["fleetforge mail read --as GreenWren msg_01M82TAAV3AZ36GNZDTDKMW2JH --ack"],
    "mail thread": ["fleetforge mail thread --as GreenWren msg_01M82TAAV3AZ36GNZDTDKMW2JH"],
    "mail search": ["fleetforge mail search --as GreenWren 'tokenizer slow'"],
    "reserve": ["fleetforge reserve --as BlueFalcon 'src/api/**' --ttl 1800 --reason 'auth'"],
    "release": ["fleetforge release --as BlueFalcon 'src/api/**'"],
    "reservations check": ["fleetforge reservations check --as BlueFalcon src/app.py"],
    "lock acquire": ["fleetforge lock acquire --as BlueFalcon migrations --ttl 600"],
    "lock renew": ["fleetforge lock renew --as BlueFalcon migrations --fencing-token 3"],
    "lock release": ["fleetforge lock release --as BlueFalcon migrations --fencing-token 3"],
    "checkpoint save": [
        "fleetforge checkpoint save --as BlueFalcon --summary 'auth done' "
        "--file src/auth.py --next 'write tests' --reason context_compacted"
    ],
    "checkpoint show": ["fleetforge checkpoint show --as BlueFalcon"],
    "missions": ["fleetforge missions --json"],
    "checkpoint cursor": ["fleetforge checkpoint cursor --as BlueFalcon events 1042"],
}


def add_examples(app: typer.Typer, prefix: str = "") -> None:
    """Put each command's example under its help (``epilog``), sub-apps included."""
    for info in app.registered_commands:
        path = f"{prefix}{info.name}"
        lines = EXAMPLES.get(path)
        if lines:
            title = "Example" if len(lines) == 1 else "Examples"
            # typer prints the epilog as rich markup, line breaks kept
            info.epilog = f"{title}:\n" + "\n".join(f"  $ {escape(line)}" for line in lines)
    for group in app.registered_groups:
        if group.typer_instance is not None and group.name:
            add_examples(group.typer_instance, f"{prefix}{group.name} ")


def flags_show_no_type() -> None:
    """Typer 0.29 prints every option's type in help, flags too (``--wait <bool>``): a flag
    takes no value, so it gets none. (Only how help looks changes.)"""
    shown = TyperOption.display_type_rich
    if getattr(shown, "_fleetforge", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.is_flag and self.metavar is None:
            return None
        return shown(self, ctx)

    display_type_rich._fleetforge = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
