"""An MCP ``ClientSession`` that compiles each tool's output schema once.

The MCP SDK 1.x client checks every tool result against the tool's ``outputSchema`` with
``jsonschema.validate``, which re-validates the schema itself against the 2020-12 metaschema on
every call: about 1 ms per KB of schema, so a 40 KB ``Run`` schema cost ~90 ms a call. This
session keeps the same contract (a result that does not match its schema raises) but checks each
schema once and reuses the compiled validator.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import exceptions as jsonschema_exceptions
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from mcp import ClientSession
from mcp import types as mcp_types
from referencing import Registry

__all__ = ["FleetClientSession"]


class FleetClientSession(ClientSession):
    """``ClientSession`` with cached output-schema validators (same checks, done once)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._validators: dict[str, tuple[int, Validator]] = {}

    def _validator(self, name: str, schema: dict[str, Any]) -> Validator:
        cached = self._validators.get(name)
        if cached is not None and cached[0] == id(schema):
            return cached[1]
        cls = validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema_exceptions.SchemaError as exc:
            raise RuntimeError(f"Invalid schema for tool {name}: {exc.message}") from exc
        validator: Validator = cls(schema, registry=Registry())
        self._validators[name] = (id(schema), validator)
        return validator

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
        error = jsonschema_exceptions.best_match(
            self._validator(name, schema).iter_errors(result.structuredContent)
        )
        if error is not None:
            where = "/" + "/".join(
                json.dumps(p) if isinstance(p, int) else str(p) for p in error.absolute_path
            )
            raise RuntimeError(
                f"Invalid structured content returned by tool {name} at {where}: {error.message}"
            )
