"""Shared building blocks of every contract model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "FLEET_PROTOCOL_VERSION",
    "SCHEMA_BASE_URI",
    "ContractModel",
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

Identifier = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"),
]
"""An opaque id: letters, digits, ``_ . : -``; starts with a letter or digit."""

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

    model_config = ConfigDict(
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        defer_build=True,
    )
