"""Path patterns of file reservations: validation, matching, and the overlap rule.

A pattern is a glob relative to the project root, with ``/`` separators: ``*`` matches within
one path segment, ``**`` across segments (``a/**/b`` also matches ``a/b``), ``?`` one character
of a segment, ``[abc]`` a character class. A pattern ending in ``/`` names a folder and means
everything under it (``src/`` = ``src/**``). Patterns and paths may not be absolute, contain
``..``, ``\\``, NUL or a drive letter, so none can reach outside the project root.

**Overlap rule** (conservative: it may call two patterns overlapping when no path matches both,
never the reverse). Two patterns overlap unless one of these proves them disjoint:

1. both are literal paths and differ;
2. one is literal and the other does not match it;
3. their *static prefixes* (the text before the first glob character) are such that neither
   starts with the other: every path a pattern matches starts with its static prefix;
4. their *static suffixes* (the text after the last glob character) are such that neither ends
   with the other: every path a pattern matches ends with its static suffix.

Otherwise they overlap (``src/*.py`` and ``src/app*`` overlap; ``src/*.py`` and ``docs/*`` do
not; ``src/*.py`` and ``src/*.md`` do not).
"""

from __future__ import annotations

import re
from functools import lru_cache

from fleetforge.errors import ContractError, ErrorDetail

__all__ = ["glob_regex", "is_literal", "matches", "normalize_path", "normalize_pattern", "overlap"]

MAX_PATTERN = 512
_GLOB = "*?["


def _check(text: str, pointer: str, what: str) -> str:
    problem = None
    if not isinstance(text, str) or not text.strip():
        problem = "must not be empty"
    elif len(text) > MAX_PATTERN:
        problem = f"is longer than {MAX_PATTERN} characters"
    elif "\x00" in text or "\\" in text:
        problem = "may not contain NUL or backslashes (use '/')"
    elif text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        problem = "must be relative to the project root, not absolute"
    elif any(part == ".." for part in text.split("/")):
        problem = "may not contain '..' (it would leave the project root)"
    if problem:
        raise ContractError(f"{what} {problem}: {text!r}", details=[ErrorDetail(pointer, problem)])
    return text


def _clean(text: str) -> str:
    parts = [p for p in text.split("/") if p not in ("", ".")]
    return "/".join(parts)


def normalize_pattern(pattern: str, pointer: str = "/paths/0") -> str:
    """The pattern checked and normalized (``./`` and doubled ``/`` dropped, ``dir/`` ->
    ``dir/**``); ContractError naming ``pointer`` when it is not a pattern inside the root."""
    _check(pattern, pointer, "path pattern")
    folder = pattern.endswith("/")
    cleaned = _clean(pattern)
    if not cleaned:
        raise ContractError(
            f"path pattern {pattern!r} names the root itself; use '**'",
            details=[ErrorDetail(pointer, "names the project root")],
        )
    if "[" in cleaned:
        try:
            re.compile(_translate(cleaned))
        except re.error as exc:
            raise ContractError(
                f"path pattern {pattern!r} is not a valid glob: {exc}",
                details=[ErrorDetail(pointer, "is not a valid glob")],
            ) from None
    return cleaned + "/**" if folder else cleaned


def normalize_path(path: str, pointer: str = "/paths/0") -> str:
    """A path (no globs expected), checked and normalized like a pattern."""
    _check(path, pointer, "path")
    cleaned = _clean(path)
    if not cleaned:
        raise ContractError(
            f"path {path!r} names the project root",
            details=[ErrorDetail(pointer, "names the project root")],
        )
    return cleaned


def is_literal(pattern: str) -> bool:
    return not any(ch in pattern for ch in _GLOB)


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            end = pattern.find(
                "]", i + 2 if pattern.startswith("[!", i) or pattern.startswith("[]", i) else i + 1
            )
            if end < 0:
                out.append(re.escape(ch))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """The compiled regular expression of a normalized pattern (whole path)."""
    return re.compile(_translate(pattern) + r"\Z", re.DOTALL)


def matches(pattern: str, path: str) -> bool:
    """Does the normalized ``pattern`` match the normalized ``path``? (A literal pattern also
    covers what lies under it: reserving ``src/app`` reserves ``src/app/x.py``.)"""
    if is_literal(pattern):
        return path == pattern or path.startswith(pattern + "/")
    return glob_regex(pattern).match(path) is not None


def _prefix(pattern: str) -> str:
    cut = min((i for i, ch in enumerate(pattern) if ch in _GLOB), default=len(pattern))
    return pattern[:cut]


def _suffix(pattern: str) -> str:
    last = max((i for i, ch in enumerate(pattern) if ch in "*?[]"), default=-1)
    return pattern[last + 1 :]


def overlap(a: str, b: str) -> bool:
    """May a path match both normalized patterns? (See the module doc for the rule.)"""
    if a == b:
        return True
    lit_a, lit_b = is_literal(a), is_literal(b)
    if lit_a and lit_b:  # a literal covers its subtree
        return a.startswith(b + "/") or b.startswith(a + "/")
    if lit_a or lit_b:
        literal, glob = (a, b) if lit_a else (b, a)
        if matches(glob, literal):
            return True
        depth = _fixed_depth(glob)  # paths under the literal are deeper than it
        if depth is not None and depth <= literal.count("/") + 1:
            return False
        return _globs_overlap(literal + "/**", glob)
    return _globs_overlap(a, b)


def _fixed_depth(pattern: str) -> int | None:
    """The number of segments every match has, when the pattern fixes it."""
    return None if "**" in pattern or "[" in pattern else pattern.count("/") + 1


def _globs_overlap(a: str, b: str) -> bool:
    depth_a, depth_b = _fixed_depth(a), _fixed_depth(b)
    if depth_a is not None and depth_b is not None and depth_a != depth_b:
        return False
    pa, pb = _prefix(a), _prefix(b)
    if not (pa.startswith(pb) or pb.startswith(pa)):
        return False
    sa, sb = _suffix(a), _suffix(b)
    return sa.endswith(sb) or sb.endswith(sa)
