"""Tool output schemas as MCP clients receive them: short, pointing to the full contract.

A stock MCP client (the official ``ClientSession``, which LangChain's, CrewAI's and AutoGen's MCP
adapters use) validates every successful result against the tool's ``outputSchema`` with
``jsonschema.validate``, which checks the schema itself against the metaschema first, on every
call. That check grows with every subschema: a full ``Run`` schema made ``fleet_get_run`` cost a
stock client 16 pings, a top-level one with a type per field still 2.5 ms. So a tool publishes
an object schema with its title and a description naming each field and its JSON type (~0.15
ms to check), and the complete contracts stay published as ``fleet://schemas/{name}``. The
server builds every result from the full pydantic model, and FleetForge's own client checks
results against that model.
"""

from __future__ import annotations

import inspect
from datetime import date, datetime, time
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from fleetforge import schemas
from fleetforge.operations import Operation

__all__ = ["published_output"]

# bool before int: a bool is an int to Python
_PY_TO_JSON = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


def published_output(op: Operation[Any, Any]) -> dict[str, Any]:
    """The outputSchema ``op``'s tool publishes (see the module doc). Built from the result
    model's fields, not its JSON schema: a server registers every tool at start."""
    model = op.result
    fields = ", ".join(
        f"{name} ({'|'.join(sorted(json_types(field.annotation))) or 'any'})"
        for name, field in model.model_fields.items()
    )
    text = f"{inspect.cleandoc(model.__doc__ or '')} Fields: {fields}."
    name = _published_name(model.__name__)
    if name is not None:
        text += f" The full contract is the resource fleet://schemas/{name}."
    return {"type": "object", "title": model.__name__, "description": text}


def _published_name(model: str) -> str | None:
    """The published schema of a result model, if it has one (``Run`` -> ``run``...)."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in model).lstrip("_")
    return snake if snake in set(schemas.names()) else None


def json_types(annotation: Any) -> set[str]:
    """The JSON types a Python annotation's values take; empty for any value."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return json_types(get_args(annotation)[0])
    if origin in (Union, UnionType):
        found: set[str] = set()
        for arg in get_args(annotation):
            arg_types = json_types(arg)
            if not arg_types:
                return set()
            found |= arg_types
        return found
    if origin is Literal:
        return {_PY_TO_JSON.get(type(v), "string") for v in get_args(annotation)}
    kind = origin or annotation
    if not isinstance(kind, type):
        return set()
    for python, json_type in _PY_TO_JSON.items():
        if python is not type(None) and issubclass(kind, python):
            return {json_type}
    if kind is type(None):
        return {"null"}
    if issubclass(kind, list | tuple | set | frozenset):
        return {"array"}
    if issubclass(kind, datetime | date | time) or kind.__name__.endswith("Datetime"):
        return {"string"}  # pydantic's AwareDatetime & co. are not datetime subclasses
    return {"object"}  # models, mappings
