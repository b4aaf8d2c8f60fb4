"""Reading JSON documents named on the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fleetforge.errors import ContractError, ErrorDetail, UsageError

__all__ = ["read_json"]


def read_json(path: str) -> Any:
    """Parse the JSON file at ``path`` (``-`` = stdin).

    A file that cannot be read is a :class:`UsageError` (exit 2); text that is not JSON is a
    :class:`ContractError` (exit 1) whose message gives the line and column.
    """
    name = "<stdin>" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read {name}: {reason}", path=path) from exc
    try:
        return json.loads(text)
    except RecursionError:
        raise ContractError(
            f"{name} nests too deeply to read",
            details=[ErrorDetail("", "nested deeper than JSON values may be (64 levels)")],
            path=path,
        ) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ContractError(
            f"{name} is not valid JSON",
            details=[ErrorDetail("", f"{exc.msg} at {where}")],
            path=path,
        ) from exc
