"""Where data lives: flag > environment > default, and store URL forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetforge.errors import UsageError
from fleetforge.fleet.settings import artifacts_root, parse_store_url, store_url


def test_store_url_precedence() -> None:
    env = {"FLEETFORGE_STORE": "sqlite:///env.db", "FLEETFORGE_HOME": "/srv/fleet"}
    assert store_url("sqlite:///flag.db", env) == "sqlite:///flag.db"
    assert store_url(None, env) == "sqlite:///env.db"
    assert store_url(None, {"FLEETFORGE_HOME": "/srv/fleet"}) == "sqlite:////srv/fleet/fleet.db"
    assert store_url(None, {}) == "sqlite:///.fleet/fleet.db"


def test_artifacts_root_precedence() -> None:
    env = {"FLEETFORGE_ARTIFACTS": "/blobs", "FLEETFORGE_HOME": "/srv/fleet"}
    assert artifacts_root("/flag", env) == Path("/flag")
    assert artifacts_root(None, env) == Path("/blobs")
    assert artifacts_root(None, {"FLEETFORGE_HOME": "/srv/fleet"}) == Path("/srv/fleet/artifacts")
    assert artifacts_root(None, {}) == Path(".fleet/artifacts")


@pytest.mark.parametrize(
    ("url", "backend", "path"),
    [
        ("sqlite://", "sqlite", None),
        ("sqlite:///relative.db", "sqlite", "relative.db"),
        ("sqlite:////absolute/fleet.db", "sqlite", "/absolute/fleet.db"),
        ("sqlite:///fleet.db?synchronous=full", "sqlite", "fleet.db"),
        ("postgresql://u:p@h:5432/db", "postgresql", None),
        ("postgres://u@h/db", "postgresql", None),
    ],
)
def test_url_forms(url: str, backend: str, path: str | None) -> None:
    parsed = parse_store_url(url)
    assert (parsed.backend, parsed.path) == (backend, path)


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://host/x.db", "fleet.db"])
def test_bad_urls_say_what_is_accepted(url: str) -> None:
    with pytest.raises(UsageError, match="sqlite"):
        parse_store_url(url)
