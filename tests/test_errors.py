"""The exception tree: codes, exit codes, pickling and the wire form."""

from __future__ import annotations

import pickle

import pytest

import fleetforge.errors as errors_module
from fleetforge.errors import (
    ContractError,
    ErrorDetail,
    FleetForgeError,
    LeaseLostError,
    error_from_dict,
)

ALL = [
    obj
    for obj in vars(errors_module).values()
    if isinstance(obj, type) and issubclass(obj, FleetForgeError)
]

EXIT_CODES = {
    "ContractError": 1, "VerificationError": 1, "AuthError": 1, "ForbiddenError": 1,
    "UsageError": 2, "AdapterStateError": 2,
    "NotFoundError": 3,
    "ConflictError": 4, "LeaseLostError": 4, "AlreadyCompletedError": 4, "RunCancelledError": 4,
    "BudgetExceededError": 4,
    "FleetForgeError": 5, "StoreError": 5, "SchemaVersionError": 5, "InternalError": 5,
    "UnavailableError": 6,
}  # fmt: skip


def test_every_error_has_the_decided_exit_code() -> None:
    assert {cls.__name__: cls.exit_code for cls in ALL} == EXIT_CODES


def test_every_error_is_listed_in_the_module_docstring_tree() -> None:
    doc = errors_module.__doc__ or ""
    assert all(cls.__name__ in doc for cls in ALL)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_errors_survive_pickle_and_the_wire(cls: type[FleetForgeError]) -> None:
    error = cls("it broke", details=[ErrorDetail("/a/0", "bad")], run_id="r1")
    for copy in (pickle.loads(pickle.dumps(error)), error_from_dict(error.to_dict())):
        assert type(copy) is cls
        assert copy.message == "it broke"
        assert copy.details == error.details
        assert copy.context == {"run_id": "r1"}


def test_wire_form() -> None:
    error = LeaseLostError("lease lost: stale fencing token", task_id="t1")
    assert error.to_dict() == {
        "error": {
            "code": "LeaseLostError",
            "message": "lease lost: stale fencing token",
            "details": [],
            "context": {"task_id": "t1"},
        }
    }


def test_unknown_codes_rebuild_as_the_root() -> None:
    rebuilt = error_from_dict({"error": {"code": "SomethingNew", "message": "m"}})
    assert type(rebuilt) is FleetForgeError


def test_str_lists_the_details() -> None:
    details = [ErrorDetail("/seed", "a positive integer seed is required"), ErrorDetail("", "top")]
    error = ContractError("invalid run spec: 2 problems", details=details)
    assert str(error) == (
        "invalid run spec: 2 problems\n  /seed: a positive integer seed is required\n  /: top"
    )


def test_contract_error_is_also_a_value_error() -> None:
    assert issubclass(ContractError, ValueError)


def test_unavailable_error_is_also_a_connection_error() -> None:
    from fleetforge.errors import UnavailableError

    assert issubclass(UnavailableError, ConnectionError)
    assert UnavailableError("no answer", url="http://127.0.0.1:1/mcp").exit_code == 6
