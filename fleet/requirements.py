"""Does a worker meet a task's workspace requirements? (issue 23: checked at lease, and said
in ``Run.blocked`` when no live worker does.)

A task's ``workspace`` may ask for free disk (``min_disk_mb``) and environment variables
(``environment.required``); a worker reports its machine when it registers
(:class:`~fleetforge.contracts.FleetWorkerEnvironment`: free disk, names of the variables set).
A worker that reported nothing meets no requirement; a task that asks for nothing fits any.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fleetforge.contracts import FleetWorkerEnvironment, FleetWorkerSpec

__all__ = ["meets", "unmet_message"]


def _needs(workspace: Mapping[str, Any] | None) -> tuple[int | None, list[str]]:
    if not workspace:
        return None, []
    required = (workspace.get("environment") or {}).get("required") or []
    return workspace.get("min_disk_mb"), list(required)


def meets(workspace: Mapping[str, Any] | None, env: FleetWorkerEnvironment | None) -> bool:
    """Whether a worker with ``env`` meets the task's ``workspace`` requirements."""
    disk, required = _needs(workspace)
    if disk is None and not required:
        return True
    if env is None:
        return False
    if disk is not None and (env.free_disk_mb is None or env.free_disk_mb < disk):
        return False
    return all(name in env.env_vars for name in required)


def unmet_message(
    workspace: Mapping[str, Any] | None, workers: Sequence[FleetWorkerSpec]
) -> tuple[str, str]:
    """(code, message) for ``workers`` none of which meets the requirements, saying what is
    missing ("no live worker has env var X; 2 workers lack 10240 MiB free disk")."""
    disk, required = _needs(workspace)
    parts = []
    nobody = [v for v in required if not any(v in (w.environment or _NONE).env_vars
                                              for w in workers)]  # fmt: skip
    parts += [f"no live worker has env var {name}" for name in nobody]
    if disk is not None:
        short = sum(1 for w in workers if ((w.environment or _NONE).free_disk_mb or 0) < disk)
        if short:
            noun = "worker lacks" if short == 1 else "workers lack"
            parts.append(f"{short} {noun} {disk} MiB free disk")
    code = "env_var_missing" if nobody else "disk_too_small" if disk is not None else "no_worker"
    if not parts:
        parts.append("no live worker meets every requirement at once")
        code = "requirements_unmet"
    return code, "; ".join(parts)


_NONE = FleetWorkerEnvironment()
