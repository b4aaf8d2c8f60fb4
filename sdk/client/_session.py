"""An MCP ``ClientSession`` that compiles each tool's output schema once.

The MCP SDK 1.x client checks every tool result against the tool's ``outputSchema`` with
``jsonschema.validate``, which re-validates the schema itself against the 2020-12 metaschema on
every call: about 1 ms per KB of schema, so a 40 KB ``Run`` schema cost ~90 ms a call. This
session keeps the same contract (a result that does not match its schema raises) but checks each
schema once and reuses the compiled validator.

A result is first checked by code ``fastjsonschema`` generates from the schema (~4 µs for a
lease result, where ``jsonschema`` takes ~60), when the schema uses only keywords that mean the
same in draft 7 and 2020-12 and that both libraries implement alike (see ``_FAST_KEYWORDS``).
That check is never more lenient than ``jsonschema``; whatever it refuses goes to ``jsonschema``,
which decides and words the error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import fastjsonschema
from jsonschema import exceptions as jsonschema_exceptions
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from mcp import ClientSession
from mcp import types as mcp_types
from referencing import Registry

__all__ = ["FleetClientSession"]

# Keywords whose meaning is the same in draft 7 (what fastjsonschema implements) and 2020-12,
# mapped to what their value holds. Anything else ($ref, prefixItems, unevaluated*, array-form
# items, ...) leaves the schema to jsonschema alone.
_SCHEMA, _SCHEMAS, _NAMED, _PLAIN, _STRINGS = "schema", "schemas", "named", "plain", "strings"
_FAST_KEYWORDS = {
    "type": _PLAIN,
    "enum": _STRINGS,
    "const": _STRINGS,
    "properties": _NAMED,
    "patternProperties": _NAMED,
    "additionalProperties": _SCHEMA,
    "propertyNames": _SCHEMA,
    "required": _PLAIN,
    "minProperties": _PLAIN,
    "maxProperties": _PLAIN,
    "items": _SCHEMA,
    "minItems": _PLAIN,
    "maxItems": _PLAIN,
    "anyOf": _SCHEMAS,
    "oneOf": _SCHEMAS,
    "allOf": _SCHEMAS,
    "not": _SCHEMA,
    "minimum": _PLAIN,
    "maximum": _PLAIN,
    "exclusiveMinimum": _PLAIN,
    "exclusiveMaximum": _PLAIN,
    "minLength": _PLAIN,
    "maxLength": _PLAIN,
    "pattern": _PLAIN,
    # annotations (formats are not asserted by either, defaults not applied)
    "format": _PLAIN,
    "title": _PLAIN,
    "description": _PLAIN,
    "default": _PLAIN,
    "examples": _PLAIN,
    "deprecated": _PLAIN,
    "readOnly": _PLAIN,
    "writeOnly": _PLAIN,
    "$comment": _PLAIN,
    "discriminator": _PLAIN,  # OpenAPI's, which pydantic writes; an annotation to both
}


def _fast_safe(schema: Any) -> bool:
    """Whether every keyword in ``schema`` is one fastjsonschema checks as jsonschema does."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    for key, value in schema.items():
        kind = _FAST_KEYWORDS.get(key)
        if kind is None:
            return False
        if kind == _SCHEMA and not _fast_safe(value):
            return False
        if kind == _SCHEMAS and not (isinstance(value, list) and all(map(_fast_safe, value))):
            return False
        if kind == _NAMED and not (
            isinstance(value, dict) and all(_fast_safe(v) for v in value.values())
        ):
            return False
        # enum/const: strings and null only (fastjsonschema compares 1 and true as equal)
        if kind == _STRINGS and not all(
            v is None or isinstance(v, str) for v in (value if key == "enum" else [value])
        ):
            return False
    return True


def _fast_check(schema: dict[str, Any]) -> Callable[[Any], Any] | None:
    """fastjsonschema's check of ``schema``, when it can stand in for jsonschema's."""
    if not _fast_safe(schema):
        return None
    try:
        check: Callable[[Any], Any] = fastjsonschema.compile(
            schema, use_default=False, use_formats=False
        )
    except fastjsonschema.JsonSchemaDefinitionException:
        return None
    return check


class FleetClientSession(ClientSession):
    """``ClientSession`` with cached output-schema validators (same checks, done once)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._validators: dict[
            str, tuple[dict[str, Any], Validator, Callable[[Any], Any] | None]
        ] = {}

    def _validator(
        self, name: str, schema: dict[str, Any]
    ) -> tuple[Validator, Callable[[Any], Any] | None]:
        cached = self._validators.get(name)
        if cached is not None and cached[0] is schema:
            return cached[1], cached[2]
        cls = validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema_exceptions.SchemaError as exc:
            raise RuntimeError(f"Invalid schema for tool {name}: {exc.message}") from exc
        validator: Validator = cls(schema, registry=Registry())
        fast = _fast_check(schema)
        self._validators[name] = (schema, validator, fast)
        return validator, fast

    async def _validate_tool_result(self, name: str, result: mcp_types.CallToolResult) -> None:
        if name not in self._tool_output_schemas:
            await self.list_tools()
        schema = self._tool_output_schemas.get(name)
        if schema is None:
            return
        if result.structuredContent is None:
            raise RuntimeError(
                f"Tool {name} has an output schema but did not return structured content"
            )
        validator, fast = self._validator(name, schema)
        if fast is not None:
            try:
                fast(result.structuredContent)
                return
            except Exception:  # refused, or could not tell: jsonschema decides
                pass
        error = jsonschema_exceptions.best_match(validator.iter_errors(result.structuredContent))
        if error is not None:
            where = "/" + "/".join(
                json.dumps(p) if isinstance(p, int) else str(p) for p in error.absolute_path
            )
            raise RuntimeError(
                f"Invalid structured content returned by tool {name} at {where}: {error.message}"
            )
