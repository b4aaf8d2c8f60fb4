"""Loading the SQL files that ship in ``fleetforge/fleet/sql/``.

A query file holds named queries, each introduced by a ``-- name: NAME`` line (the style of
procrastinate's ``queries.sql``); parameters are written ``:name`` in every file and each backend
translates them to its driver's style.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

__all__ = ["named_queries", "read_sql"]

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def read_sql(relative: str) -> str:
    """The text of ``sql/<relative>``."""
    return resources.files("fleetforge.fleet").joinpath("sql", relative).read_text("utf-8")


@cache
def named_queries(relative: str) -> dict[str, str]:
    """``{name: sql}`` of a query file."""
    text = read_sql(relative)
    parts = _NAME.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
