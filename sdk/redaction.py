"""Secrets never reach the log: one place that knows which text is secret and masks it.

What counts as secret here:

- every value a :class:`~fleetforge.contracts.FleetSecretRef` resolved in this process (the
  armory's pack credentials, alert endpoints...), registered by ``resolve`` itself;
- anything shaped like a fleet bearer token (``ffk_`` and 40-odd URL-safe characters), known or
  not;
- the password of every store URL this process opened, and any value passed to
  :func:`register` (the CLI registers ``--token`` / ``FLEETFORGE_TOKEN``).

Values shorter than :data:`MIN_SECRET_LENGTH` characters are not registered: masking a short
word (``fleet``) everywhere would garble ordinary text; such a value is not a credential worth
the name, and ``fleetforge`` says so where it takes one.

Where it applies: the event store masks every event's data before it is projected or written
(:func:`contains_secret`, :func:`scrub`), errors mask their message
(:class:`~fleetforge.errors.FleetForgeError`), FleetForge's loggers mask each record
(:func:`get_logger`), and store URLs are shown through :func:`mask_url`. Masked text reads ``***``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "TOKEN_PATTERN",
    "contains_secret",
    "get_logger",
    "mask_url",
    "redact",
    "register",
    "register_url",
    "scrub",
]

MASK = "***"
MIN_SECRET_LENGTH = 8
TOKEN_PATTERN = r"ffk_[A-Za-z0-9_-]{20,}"
"""A fleet bearer token (``ffk_`` + URL-safe base64); matched whether it is known or not."""

_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword", "passfile_password"})

_lock = threading.Lock()
_known: set[str] = set()
_forms: set[str] = set()  # each known value as written and as it appears inside JSON strings
_pattern: re.Pattern[str] = re.compile(TOKEN_PATTERN)


def register(value: str | None) -> None:
    """Treat ``value`` as secret from now on, in this process (no-op for short values)."""
    if not value or len(value) < MIN_SECRET_LENGTH or value in _known:
        return
    global _pattern
    with _lock:
        _known.add(value)
        _forms.update({value, json.dumps(value, ensure_ascii=False)[1:-1]})
        longest_first = sorted(_forms, key=len, reverse=True)
        _pattern = re.compile("|".join([*map(re.escape, longest_first), TOKEN_PATTERN]))


def register_url(url: str | None) -> None:
    """Register the password a store URL carries (in its user part or ``?password=``)."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        register(parts.password)
        for key, value in parse_qsl(parts.query):
            if key.lower() in _SECRET_QUERY_KEYS:
                register(value)
    except ValueError:  # not a URL: nothing to learn from it
        return


def redact(text: str) -> str:
    """``text`` with every known secret and token-shaped string replaced by ``***``."""
    if not text:
        return text
    return _pattern.sub(MASK, text)


def scrub(value: Any) -> Any:
    """``value`` (JSON data) with secrets masked in every string, keys included; the very same
    object when nothing was masked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        changed = False
        out: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = redact(key) if isinstance(key, str) else key
            new_item = scrub(item)
            changed = changed or new_key is not key or new_item is not item
            out[new_key] = new_item
        return out if changed else value
    if isinstance(value, list | tuple):
        items = [scrub(item) for item in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items
    return value


def contains_secret(text: str) -> bool:
    """Does ``text`` (an event's JSON, say) hold a known secret or a token-shaped string? One
    regex pass: the event store's fast path before it walks the data (:func:`scrub`)."""
    return _pattern.search(text) is not None


def mask_url(url: str) -> str:
    """A URL fit to print: the password (user part or ``?password=``) shown as ``***``."""
    try:
        parts = urlsplit(url)
        netloc, query = parts.netloc, parts.query
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:{MASK}@{host}"
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            masked = [(k, MASK if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs]
            query = urlencode(masked, safe="*")
        if (netloc, query) != (parts.netloc, parts.query):
            url = urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        pass
    return redact(url)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean is not message:
            record.msg, record.args = clean, None
        return True


_FILTER = _RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` whose records have secrets masked before any handler sees
    them (FleetForge's modules take their loggers from here)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
