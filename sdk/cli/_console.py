"""The consoles every command prints to (results to stdout, diagnostics to stderr), and the one
rule for printing what users wrote.

Soft wrapping: a line is never broken to fit the terminal, so piped output stays one record a
line (tables still fit their columns to the width).

**User text is printed as text** (docs/contracts.md, "Printing user text"): names, labels,
reasons, messages, step errors, file names, anything that came from a spec, a worker or the
command line goes through :func:`text` (or :func:`json_text` for JSON). It is never read as Rich
markup, and control characters cannot reach the terminal: C0/C1 controls, DEL, bidirectional
and zero-width format characters, line separators and surrogates are shown escaped
(``\\x1b``, ``\\u202e``), and in a one-line place (a table cell, a log line) so are newlines and
tabs (``\\n``, ``\\t``), so a name cannot forge a line of output.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from rich.console import Console
from rich.highlighter import JSONHighlighter
from rich.markup import escape as escape_markup
from rich.text import Text

__all__ = ["err", "escape_control", "json_text", "markup_safe", "out", "print_json", "text"]

# Piped output gets room for wide tables (a terminal's own width is used when there is one).
out = Console(
    highlight=False, soft_wrap=True, emoji=False, width=None if sys.stdout.isatty() else 160
)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

# What a terminal could act on: C0 and C1 controls and DEL; Arabic letter mark, zero-width and
# bidirectional marks, embeddings, overrides and isolates (they reorder what is shown); line
# and paragraph separators; the byte-order mark; surrogates (not text, and not encodable).
_FORMAT = "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff"
_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMAT}]")
_MULTI_LINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_FORMAT}]")
_IN_JSON = re.compile(f"[\x7f-\x9f{_FORMAT}]")  # json.dumps escapes the C0 controls itself
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(value: object, *, one_line: bool = True) -> str:
    """``value`` as a string whose control characters are shown escaped (``\\x1b``)."""
    raw = value if isinstance(value, str) else str(value)
    return (_ONE_LINE if one_line else _MULTI_LINE).sub(_escape, raw)


def text(value: object, style: str = "", *, one_line: bool = True) -> Text:
    """User text as a Rich ``Text``: never markup, control characters escaped."""
    return Text(escape_control(value, one_line=one_line), style=style)


def markup_safe(value: object) -> str:
    """User text for a place that reads Rich markup (a progress bar's description)."""
    return escape_markup(escape_control(value))


def json_text(document: str) -> str:
    """A JSON text made safe for a terminal: the characters json leaves raw that a terminal
    could act on (DEL, C1 controls, bidi and format characters) become ``\\uXXXX`` escapes,
    which is the same JSON."""
    return _IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


def print_json(document: str | Any, console: Console | None = None) -> None:
    """Pretty-print a JSON text (or a value), highlighted, through :func:`json_text`.

    (Rich's own ``print_json`` decodes the escapes again when it re-indents.)"""
    data = json.loads(document) if isinstance(document, str) else document
    pretty = Text(json_text(json.dumps(data, indent=2, ensure_ascii=False)))
    JSONHighlighter().highlight(pretty)
    (console or out).print(pretty)
