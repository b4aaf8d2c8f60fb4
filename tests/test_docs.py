"""The docs say what the code does: contract tables match the models; README examples run."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from fleetforge import validate_run_spec
from fleetforge.contracts import EVENT_TYPES, envelope, protocol

ROOT = Path(__file__).parents[1]
CONTRACTS = (ROOT / "docs" / "contracts.md").read_text()
README = (ROOT / "README.md").read_text()


def _rows() -> dict[str, set[str]]:
    """First backticked name of each table row → the backticked names in its last cell."""
    rows: dict[str, set[str]] = {}
    for line in CONTRACTS.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            key = cells[-2] if len(cells) == 3 else cells[0]  # unions: | type | variant | fields |
            rows[key.strip("`")] = set(re.findall(r"`([^`]+)`", cells[-1]))
    return rows


ROWS = _rows()


def _names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_is_documented_with_its_fields(event_type: str) -> None:
    data = EVENT_TYPES[event_type].model_fields["data"].annotation
    assert isinstance(data, type)
    assert issubclass(data, BaseModel)
    assert ROWS[event_type] == _names(data)


DOCUMENTED_MODELS = [
    getattr(module, name)
    for module in (protocol, envelope)
    for name in dir(module)
    if isinstance(getattr(module, name), type)
    and issubclass(getattr(module, name), BaseModel)
    and getattr(module, name).__module__ == module.__name__
    and not name.startswith("_")
    and name != "AdapterInfo"
]


@pytest.mark.parametrize("model", DOCUMENTED_MODELS, ids=lambda m: m.__name__)
def test_every_protocol_model_is_documented_with_its_fields(model: type[BaseModel]) -> None:
    assert ROWS[model.__name__] == _names(model)


ENUMS = [
    v
    for v in vars(protocol).values()
    if isinstance(v, type) and issubclass(v, StrEnum) and v is not StrEnum
]


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_every_enum_is_documented_with_its_values(enum: type[StrEnum]) -> None:
    assert ROWS[enum.__name__] == {member.value for member in enum}


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_run_spec_example_in_the_contracts_is_valid() -> None:
    [example] = _blocks(CONTRACTS, "json")
    validate_run_spec(json.loads(example))


DOCS = {
    "README.md": README,
    **{f"docs/{p.name}": p.read_text() for p in (ROOT / "docs").glob("*.md")},
}
EXAMPLES = [(name, block) for name, text in DOCS.items() for block in _blocks(text, "python")]


@pytest.mark.parametrize(("name", "block"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_python_examples_in_the_docs_run(name: str, block: str) -> None:
    exec(compile(block, name, "exec"), {"__name__": "docs"})


@pytest.mark.parametrize("block", [b for b in _blocks(README, "json") if '"steps"' in b])
def test_run_specs_in_the_readme_are_valid(block: str) -> None:
    validate_run_spec(json.loads(block))


def test_the_operations_table_in_the_contracts_is_the_operation_table() -> None:
    from fleetforge.operations._docs import BEGIN, END, markdown_table

    text = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == markdown_table()


@pytest.mark.anyio
async def test_the_persistent_langchain_session_of_the_mcp_page_works(tmp_path: Path) -> None:
    import sys

    [block] = [b for b in _blocks((ROOT / "docs" / "mcp.md").read_text(), "python")
               if "list_runs_through_one_session" in b]  # fmt: skip
    scope: dict[str, Any] = {}
    exec(compile(block, "docs/mcp.md", "exec"), scope)
    fleetforge = str(Path(sys.executable).with_name("fleetforge"))
    listed = await scope["list_runs_through_one_session"](fleetforge, f"sqlite:///{tmp_path}/f.db")
    assert "runs" in listed
