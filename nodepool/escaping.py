"""Text that is safe to show: control characters escaped.

    escape_controls("done\\x1b[2J")  ->  'done\\\\x1b[2J'  (shows done\\x1b[2J)
    escape_tree({"a": ["x\\ny"]})     ->  {'a': ['x\\\\ny']}

Record fields come from anyone who can write to ZooKeeper (a hold reason,
a requestor name, a cloud's error message).  Printed raw, an escape
sequence rewrites the operator's terminal; in a page, line separators and
bidirectional overrides make a row read as something else.  The CLI's
tables, the web app's text tables and the status page all pass their text
through :func:`escape_controls`, so what they show is the field, visibly.

Escaped: C0 and C1 control characters and DEL (category Cc), the line and
paragraph separators U+2028/U+2029, and the bidirectional formatting
characters (U+061C, U+200E/F, U+202A-E, U+2066-9).  ``\\n``, ``\\r`` and
``\\t`` are written like that, others as ``\\xHH`` or ``\\uHHHH``.
Everything else -- backslashes, non-ASCII letters, emoji, spaces -- is
left alone, so normal text prints exactly as before.  This is for display
only: JSON outputs carry the real values (``json.dumps`` escapes them
itself).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["escape_controls", "escape_tree"]

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f"
                     "\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every unsafe character written as an escape."""
    return _UNSAFE.sub(_escape, text)


def escape_tree(value: Any) -> Any:
    """A copy of a JSON-like value with every string (keys included)
    passed through :func:`escape_controls`; other values unchanged."""
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, dict):
        return {escape_tree(k): escape_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_tree(v) for v in value]
    return value
