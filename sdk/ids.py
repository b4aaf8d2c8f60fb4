"""Identifiers: a prefix and a ULID-style body (time-ordered, 26 Crockford base32 characters).

Within one process ids are strictly increasing (two ids minted in the same millisecond differ
in the low bits, as ULID's monotonic mode does), so sorting by id sorts by creation. Ids are not
derived from the run's seed: two submissions of one spec get different ids.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# two characters per 10 bits: 13 lookups instead of 26 divmods
_PAIRS = [_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024)]
_SHIFTS = range(120, -10, -10)
_lock = threading.Lock()
_last = 0


def new_id(prefix: str) -> str:
    """``<prefix>_<26 characters>``: 48 bits of milliseconds then 80 random bits."""
    global _last
    with _lock:
        value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
        if value <= _last:  # same millisecond (or a clock step back): count up from the last
            value = _last + 1
        _last = value
    # 130 bits (ULID pads 128 with 2 zero bits above) = 13 chunks of 10 bits
    body = "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
    return f"{prefix}_{body}"
