"""Identifiers: a prefix and a ULID-style body (time-ordered, 26 Crockford base32 characters).

Ids are not derived from the run's seed: two submissions of one spec get different ids.
"""

from __future__ import annotations

import os
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str) -> str:
    """``<prefix>_<26 characters>``: 48 bits of milliseconds then 80 random bits."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"
