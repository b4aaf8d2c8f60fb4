"""Where a fleet's data lives (DESIGN "Where data lives"): flag > environment > default.

- ``FLEETFORGE_HOME`` (default ``./.fleet``) holds ``fleet.db``, ``artifacts/`` and keys;
- ``--store`` / ``FLEETFORGE_STORE``: the database URL, in SQLAlchemy's forms;
- ``--artifacts`` / ``FLEETFORGE_ARTIFACTS``: the artifact root directory;
- files under the home (``alerts.toml``, ``prices.toml``) are read by :func:`read_toml`.

Nothing here reads the environment at import time; every function takes it as an argument.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fleetforge.errors import ContractError, UsageError

__all__ = [
    "StoreURL",
    "artifacts_root",
    "fleet_home",
    "parse_store_url",
    "read_toml",
    "store_url",
]


def fleet_home(environ: Mapping[str, str] | None = None) -> Path:
    """``FLEETFORGE_HOME``, default ``./.fleet``."""
    env = os.environ if environ is None else environ
    return Path(env.get("FLEETFORGE_HOME") or ".fleet")


def read_toml(path: Path) -> dict[str, Any] | None:
    """The TOML document in ``path``, None when there is no such file; a ContractError naming
    the file when it cannot be read or is not TOML."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ContractError(f"{path}: cannot read it: {exc.strerror}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"{path}: not TOML: {exc}") from exc


def store_url(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The store URL: ``--store``, else ``FLEETFORGE_STORE``, else SQLite in FLEETFORGE_HOME."""
    env = os.environ if environ is None else environ
    if flag:
        return flag
    if env.get("FLEETFORGE_STORE"):
        return env["FLEETFORGE_STORE"]
    # an absolute path gives the four slashes of sqlite:////absolute.db by itself
    return f"sqlite:///{fleet_home(env) / 'fleet.db'}"


def artifacts_root(flag: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The artifact root: ``--artifacts``, else ``FLEETFORGE_ARTIFACTS``, else HOME/artifacts."""
    env = os.environ if environ is None else environ
    if flag:
        return Path(flag)
    if env.get("FLEETFORGE_ARTIFACTS"):
        return Path(env["FLEETFORGE_ARTIFACTS"])
    return fleet_home(env) / "artifacts"


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL."""

    backend: str  # "sqlite" or "postgresql"
    path: str | None  # SQLite file path; None = in memory
    dsn: str | None  # PostgreSQL connection string (libpq URL)
    options: dict[str, str]

    @property
    def memory(self) -> bool:
        return self.backend == "sqlite" and self.path is None


def parse_store_url(url: str) -> StoreURL:
    """Parse ``sqlite://``, ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or
    ``postgresql://user:pass@host:port/db`` (also ``postgres://``, ``postgresql+psycopg://``)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query))
    if scheme == "sqlite":
        if parts.netloc:
            raise UsageError(
                f"store URL {url!r}: SQLite URLs have no host; use sqlite:///relative.db, "
                "sqlite:////absolute.db or sqlite:// (in memory)"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return StoreURL("sqlite", path or None, None, options)
    if scheme in {"postgresql", "postgres", "postgresql+psycopg"}:
        dsn = parts._replace(scheme="postgresql").geturl()
        return StoreURL("postgresql", None, dsn, options)
    raise UsageError(
        f"store URL {url!r}: unknown scheme '{scheme}'; use sqlite:///PATH or postgresql://..."
    )
