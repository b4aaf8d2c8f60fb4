"""Shared building blocks of every contract model."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "DIGEST_PATTERN",
    "FLEET_PROTOCOL_VERSION",
    "IDENTIFIER_PATTERN",
    "JSON_REF_PATTERN",
    "PATTERN_HINTS",
    "REF_PATTERN",
    "SCHEMA_BASE_URI",
    "SECRET_REF_PATTERN",
    "STEP_ID_PATTERN",
    "ContractModel",
    "Digest",
    "Identifier",
    "JsonObject",
    "Labels",
    "ProtocolModel",
    "Timestamp",
    "utcnow",
]

FLEET_PROTOCOL_VERSION = "1.0"
"""Version of the fleet protocol (seed 001). Additive changes keep the major number."""

SCHEMA_BASE_URI = "https://fleetforge.dev/schemas/v1/"
"""Prefix of every published schema's ``$id``: ``SCHEMA_BASE_URI + name + ".json"``."""

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
STEP_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
SECRET_REF_PATTERN = r"^(env://[A-Za-z_][A-Za-z0-9_]*|file://.+|vault://[^#]+#.+)$"
REF_PATTERN = (
    r"^(inputs\.(?P<input>[A-Za-z0-9_-]+)|steps\.(?P<step>[A-Za-z][A-Za-z0-9_-]*)\.output)"
    r"(?P<pointer>#(/([^~/]|~[01])*)*)?$"
)
"""`inputs.NAME` or `steps.ID.output`, then optionally `#` and a JSON pointer."""
JSON_REF_PATTERN = re.sub(r"\?P<\w+>", "", REF_PATTERN)
"""REF_PATTERN without named groups, as JSON Schema (ECMA 262) writes it."""

PATTERN_HINTS = {
    IDENTIFIER_PATTERN: "an id: a letter or digit, then letters, digits, '_', '.', ':' or '-'",
    STEP_ID_PATTERN: "a step id: a letter, then letters, digits, '_' or '-'",
    DIGEST_PATTERN: "a digest: 'sha256:' and 64 lowercase hex digits",
    SECRET_REF_PATTERN: "a secret reference: env://NAME, file://PATH or vault://PATH#KEY",
    JSON_REF_PATTERN: "a reference: inputs.NAME or steps.ID.output, optionally then #/json/pointer",
}
"""What each well-known pattern means, for error messages."""

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)]
"""An opaque id: letters, digits, ``_ . : -``; starts with a letter or digit."""

Digest = Annotated[str, Field(pattern=DIGEST_PATTERN)]
"""``sha256:`` and the 64-hex digest of some bytes."""

Timestamp = AwareDatetime
"""An RFC 3339 timestamp with a UTC offset."""

Labels = dict[
    Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")],
    Annotated[str, Field(max_length=256)],
]
"""String key/value labels used for filtering and selection."""

JsonObject = dict[str, Any]


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class ProtocolModel(BaseModel):
    """Base of the additive protocol types: unknown fields are accepted and ignored (seed 001)."""

    model_config = ConfigDict(
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        defer_build=True,
    )


class ContractModel(BaseModel):
    """Base of user-authored documents (run specs): unknown fields are errors, to catch typos."""

    model_config = ProtocolModel.model_config | ConfigDict(extra="forbid")
