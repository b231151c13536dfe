"""The XML text of one moto EC2 answer, written without a SAX pipeline.

moto builds an EC2 answer as nested dicts and lists and hands them to
``xmltodict.unparse``, which sends every element through
``xml.sax.saxutils.XMLGenerator`` and checks every element name again: a
fifth of moto's time for a DescribeInstances of many instances.
``unparse`` here writes the same text from the same input, for the only
way moto's ``EC2Serializer`` calls it (a full document, short empty
elements, not pretty, no namespaces, no preprocessor); the names it has
seen valid are remembered.  Anything else -- a comment key, a name
xmltodict would refuse, a second root -- is left to ``xmltodict`` itself,
so errors stay xmltodict's.

    >>> unparse({"R": {"@xmlns": "urn:x", "a": ["1", None], "b": True}})
    '<?xml version="1.0" encoding="utf-8"?>\\n<R xmlns="urn:x"><a>1</a><a/><b>true</b></R>'
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

import xmltodict

__all__ = ["unparse"]

_HEADER = '<?xml version="1.0" encoding="utf-8"?>\n'
_TEXT = "#text"
_COMMENT = "#comment"
_NOT_LISTS = (str, bytes, bytearray, memoryview, dict)
_BYTES = (bytes, bytearray, memoryview)


class _Unusual(Exception):
    """Input this writer leaves to xmltodict."""


_valid: set[str] = set()


def _check(name) -> None:
    if name in _valid:
        return
    if not isinstance(name, str) or name == _COMMENT:
        raise _Unusual
    try:
        xmltodict._validate_name(name, "element")
    except ValueError:
        raise _Unusual from None
    _valid.add(name)


def _text(value) -> str:
    """xmltodict's string of a value (booleans in lower case)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _BYTES):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _attrs(key: str, value, attrs: dict[str, str]) -> None:
    """Set ``key``'s attribute(s) as xmltodict does (a later one of the
    same name keeps the first one's place)."""
    if key == "@xmlns" and isinstance(value, dict):
        for name, ns in value.items():
            _check(name)
            attr = f"xmlns:{name}" if name else "xmlns"
            attrs[attr] = "" if ns is None else _text(ns)
        return
    name = key[1:]
    _check(name)
    attrs[name] = "" if value is None else _text(value)


def _emit(key, value, out: list[str], depth: int) -> None:
    _check(key)
    if not hasattr(value, "__iter__") or isinstance(value, _NOT_LISTS):
        value = [value]
    for index, item in enumerate(value):
        if depth == 0 and index > 0:
            raise _Unusual                  # several roots: xmltodict's error
        if item is None:
            item = {}
        elif not isinstance(item, (dict, str)):
            item = _text(item)
        if isinstance(item, str):
            item = {_TEXT: item}
        cdata = None
        attrs: dict[str, str] = {}
        children = []
        for ik, iv in item.items():
            if ik == _TEXT:
                cdata = None if iv is None else _text(iv)
            elif isinstance(ik, str) and ik.startswith("@"):
                _attrs(ik, iv, attrs)
            elif not (isinstance(iv, list) and not iv):
                children.append((ik, iv))
        head = "<" + key + "".join(f" {name}={quoteattr(text)}"
                                   for name, text in attrs.items())
        start = len(out)
        out.append(head)
        for child_key, child_value in children:
            _emit(child_key, child_value, out, depth + 1)
        if cdata:
            out.append(escape(cdata))
        if len(out) == start + 1:           # nothing inside: <key/>
            out[start] = head + "/>"
        else:
            out[start] = head + ">"
            out.append(f"</{key}>")


def unparse(body: dict) -> str:
    """``xmltodict.unparse(body, full_document=True,
    short_empty_elements=True)``, faster (module docstring)."""
    out = [_HEADER]
    try:
        if len(body) != 1:
            raise _Unusual
        for key, value in body.items():
            _emit(key, value, out, 0)
    except _Unusual:
        return xmltodict.unparse(body, full_document=True,
                                 short_empty_elements=True)
    return "".join(out)
