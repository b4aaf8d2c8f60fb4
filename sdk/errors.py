"""The one exception tree of FleetForge.

Every error the library raises on purpose derives from :class:`FleetForgeError`. Each class has a
stable ``code`` (its class name, used on the MCP wire so a client rebuilds the same class) and an
``exit_code`` (the CLI's exit status)::

    FleetForgeError                 code=FleetForgeError      exit 5
    ├── ContractError               invalid input (schema, DAG, seed)        exit 1
    │   └── VerificationError       a run or bundle failed verification      exit 1
    ├── UsageError                  developer misuse of the API or CLI       exit 2
    │   └── AdapterStateError       adapter called out of order              exit 2
    ├── NotFoundError               run, step, task, artifact, schema        exit 3
    ├── ConflictError               state does not allow the operation       exit 4
    │   ├── LeaseLostError          stale fencing token / expired lease      exit 4
    │   │   └── BudgetExceededError the run went over its budget: stop       exit 4
    │   ├── AlreadyCompletedError   receipt or step already final            exit 4
    │   └── RunCancelledError       the task's run was cancelled             exit 4
    ├── AuthError                   missing or bad credentials               exit 1
    │   └── ForbiddenError          authenticated but lacks the scope        exit 1
    ├── StoreError                  the store failed (driver errors wrapped) exit 5
    │   └── SchemaVersionError      database newer than this library         exit 5
    ├── UnavailableError            a fleet server or database cannot be     exit 6
    │                               reached (refused, unknown host, timeout)
    └── InternalError               a bug; the message carries an error id   exit 5

Problems with a location in the input are :class:`ErrorDetail` entries (a JSON pointer and a
message), so one error can report every problem at once. Messages never carry a secret: known
secret values and token-shaped strings are masked as the error is built
(:mod:`fleetforge.redaction`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from fleetforge.redaction import redact

__all__ = [
    "AdapterStateError",
    "AlreadyCompletedError",
    "AuthError",
    "BudgetExceededError",
    "ConflictError",
    "ContractError",
    "ErrorDetail",
    "FleetForgeError",
    "ForbiddenError",
    "InternalError",
    "LeaseLostError",
    "NotFoundError",
    "RunCancelledError",
    "SchemaVersionError",
    "StoreError",
    "UnavailableError",
    "UsageError",
    "VerificationError",
    "error_from_dict",
]


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One problem at one place: ``pointer`` is an RFC 6901 JSON pointer into the input."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


class FleetForgeError(Exception):
    """Root of every error FleetForge raises on purpose."""

    exit_code: ClassVar[int] = 5

    def __init__(
        self,
        message: str,
        *,
        details: Iterable[ErrorDetail] = (),
        **context: Any,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.details: tuple[ErrorDetail, ...] = tuple(
            ErrorDetail(d.pointer, redact(d.message)) for d in details
        )
        self.context: dict[str, Any] = {
            k: redact(v) if isinstance(v, str) else v for k, v in context.items()
        }

    @property
    def code(self) -> str:
        """The stable wire name of this error: the class name."""
        return type(self).__name__

    def __str__(self) -> str:
        if not self.details:
            return self.message
        lines = [self.message, *(f"  {d}" for d in self.details)]
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default Exception pickling.
        return (_rebuild, (type(self), self.message, self.details, self.context))

    def to_dict(self) -> dict[str, Any]:
        """The structured form used by MCP tool errors and ``--json`` CLI output."""
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "details": [d.to_dict() for d in self.details],
        }
        if self.context:
            body["context"] = {k: v for k, v in self.context.items() if _is_jsonable(v)}
        return {"error": body}


def _rebuild(
    cls: type[FleetForgeError],
    message: str,
    details: tuple[ErrorDetail, ...],
    context: dict[str, Any],
) -> FleetForgeError:
    return cls(message, details=details, **context)


def _is_jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class ContractError(FleetForgeError, ValueError):
    """Input does not satisfy a contract: a JSON Schema, the DAG rules, or the seed rule."""

    exit_code = 1


class VerificationError(ContractError):
    """A run (in the store, or a bundle) failed verification: each failure is a detail whose
    pointer says where (``seq N``, ``receipt ID``, ``artifact DIGEST``, a projection row)."""

    exit_code = 1


class UsageError(FleetForgeError):
    """The API or the CLI was used wrongly (a programming or invocation mistake)."""

    exit_code = 2


class AdapterStateError(UsageError):
    """An adapter method was called out of order (emit before start, anything after complete)."""


class NotFoundError(FleetForgeError, LookupError):
    """A run, step, task, artifact, worker or schema does not exist."""

    exit_code = 3


class ConflictError(FleetForgeError):
    """The current state does not allow the operation."""

    exit_code = 4


class LeaseLostError(ConflictError):
    """The caller's lease is gone: its fencing token is stale or the lease expired."""


class BudgetExceededError(LeaseLostError):
    """The task's run went over its budget (tokens, cost or wall time): the attempt's lease
    was taken back, so stop working on it. A LeaseLostError, so code that stops on a lost
    lease (the SDK Worker) stops here too; ``context['budget']`` names the budget."""


class AlreadyCompletedError(ConflictError):
    """The task, step or receipt is already final."""


class RunCancelledError(ConflictError):
    """The run this task belongs to was cancelled; stop working on it."""


class AuthError(FleetForgeError):
    """Credentials are missing or wrong."""

    exit_code = 1


class ForbiddenError(AuthError):
    """The caller is authenticated but lacks the scope or grant for the operation."""


class StoreError(FleetForgeError):
    """The event store failed; the driver's exception is chained as ``__cause__``."""

    exit_code = 5


class SchemaVersionError(StoreError):
    """The database was written by a newer FleetForge than this one."""


class UnavailableError(FleetForgeError, ConnectionError):
    """A fleet server (``fleetforge serve``) or the store's database cannot be reached: the
    connection was refused, the host name is unknown, or it did not answer in time. Nothing was
    done; the message says where it tried and what to check. Transient causes (timeouts,
    resets) were already retried a bounded number of times before this is raised."""

    exit_code = 6


class InternalError(FleetForgeError):
    """An unexpected failure; the message carries an id to find it in the logs."""

    exit_code = 5


def _all_subclasses(cls: type[FleetForgeError]) -> dict[str, type[FleetForgeError]]:
    found = {cls.__name__: cls}
    for sub in cls.__subclasses__():
        found.update(_all_subclasses(sub))
    return found


def error_from_dict(payload: dict[str, Any]) -> FleetForgeError:
    """Rebuild the exception described by :meth:`FleetForgeError.to_dict` (unknown codes → root)."""
    body = payload.get("error", payload)
    classes = _all_subclasses(FleetForgeError)
    cls = classes.get(str(body.get("code", "")), FleetForgeError)
    details = [
        ErrorDetail(str(d.get("pointer", "")), str(d.get("message", "")))
        for d in body.get("details") or []
    ]
    context = body.get("context") or {}
    return cls(str(body.get("message", "")), details=details, **context)
