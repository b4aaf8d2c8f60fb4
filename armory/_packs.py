"""Loading tool pack manifests: built-ins, ``$FLEETFORGE_HOME/packs``, or given paths."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleetforge.contracts.toolpack import HttpServer, StdioServer, ToolPack
from fleetforge.errors import ContractError, ErrorDetail, NotFoundError
from fleetforge.fleet.settings import fleet_home
from fleetforge.validation import pydantic_details

__all__ = ["Pack", "builtin_packs", "find_packs", "get_pack", "load_pack", "parse_pack"]


@dataclass(frozen=True)
class Pack:
    """A loaded manifest and where it came from."""

    manifest: ToolPack
    source: str


def _toml_path(pointer: str) -> str:
    """``/servers/0/command`` -> ``servers[0].command`` (how a TOML author reads it)."""
    out = ""
    for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "(top level)"


def parse_pack(data: Mapping[str, Any], *, source: str) -> Pack:
    """Validate a manifest (already parsed from TOML); ContractError lists each problem by its
    TOML path."""
    problems: list[ErrorDetail] = []
    body = dict(data)
    servers = body.get("servers")
    checked: list[StdioServer | HttpServer] = []
    if isinstance(servers, list):
        for i, server in enumerate(servers):
            model = HttpServer if isinstance(server, dict) and "url" in server else StdioServer
            try:
                checked.append(model.model_validate(server))
            except ValidationError as exc:
                problems.extend(pydantic_details(exc, prefix=f"/servers/{i}"))
        names = [s.name for s in checked]
        for name in {n for n in names if names.count(n) > 1}:
            problems.append(ErrorDetail("/servers", f"two servers are named {name!r}"))
        body["servers"] = [s.model_dump() for s in checked] or servers
    try:
        manifest = ToolPack.model_validate(body)
    except ValidationError as exc:
        problems.extend(d for d in pydantic_details(exc) if not d.pointer.startswith("/servers/"))
        manifest = None
    if problems or manifest is None:
        details = [ErrorDetail(_toml_path(d.pointer), d.message) for d in problems]
        raise ContractError(f"invalid tool pack {source}", details=details, source=source)
    return Pack(manifest, source)


def load_pack(path: str | Path) -> Pack:
    """Read and validate a TOML manifest."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NotFoundError(f"cannot read tool pack {file}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"tool pack {file} is not valid TOML: {exc}") from None
    return parse_pack(data, source=str(file))


def builtin_packs() -> dict[str, Pack]:
    """The packs shipped with FleetForge (``fleet``, ``workspace``)."""
    found = {}
    for entry in resources.files("fleetforge.armory").joinpath("packs").iterdir():
        if entry.name.endswith(".toml"):
            pack = parse_pack(
                tomllib.loads(entry.read_text("utf-8")), source=f"builtin:{entry.name}"
            )
            found[pack.manifest.name] = pack
    return found


def find_packs(paths: Iterable[str | Path] = (), *, home: Path | None = None) -> dict[str, Pack]:
    """Built-ins, then ``HOME/packs/*.toml``, then ``paths``; a later pack of the same name
    replaces an earlier one."""
    packs = builtin_packs()
    folder = (home or fleet_home()) / "packs"
    files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    for file in [*files, *map(Path, paths)]:
        pack = load_pack(file)
        packs[pack.manifest.name] = pack
    return packs


def get_pack(name_or_path: str, *, home: Path | None = None) -> Pack:
    """A pack by name (built-in or in HOME/packs), or from a ``.toml`` path."""
    if name_or_path.endswith(".toml"):
        return load_pack(name_or_path)
    packs = find_packs(home=home)
    if name_or_path not in packs:
        raise NotFoundError(f"no tool pack {name_or_path!r}; known: {', '.join(sorted(packs))}")
    return packs[name_or_path]
