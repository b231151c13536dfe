"""Control characters are escaped for display; everything else is left
exactly as it was (nodepool.escaping)."""

import pytest

from nodepool.escaping import escape_controls, escape_tree


@pytest.mark.parametrize("text", [
    "", "plain ascii", "debugging job 42", r"C:\path\with\backslashes",
    "Zürich – ünïcödé", "日本語", "emoji 😀 and 👩‍💻 (with a joiner)",
    "non\u00a0breaking space", "tenant/project/job", '{"k": "v"}',
])
def test_normal_text_is_unchanged(text):
    assert escape_controls(text) == text


@pytest.mark.parametrize("raw,shown", [
    ("clear\x1b[2J", "clear\\x1b[2J"),                 # ESC (CSI)
    ("title\x1b]0;pwned\x07", "title\\x1b]0;pwned\\x07"),  # OSC + BEL
    ("two\nlines\r\tx", "two\\nlines\\r\\tx"),
    ("nul\x00del\x7f", "nul\\x00del\\x7f"),
    ("c1 csi\x9b31m", "c1 csi\\x9b31m"),               # C1 control
    ("line\u2028sep\u2029", "line\\u2028sep\\u2029"),
    ("abc\u202edcba", "abc\\u202edcba"),                # RLO
    ("\u2066iso\u2069 \u200e\u200f\u061c",
     "\\u2066iso\\u2069 \\u200e\\u200f\\u061c"),
])
def test_unsafe_characters_are_escaped(raw, shown):
    assert escape_controls(raw) == shown


def test_every_c0_and_c1_control_is_escaped():
    controls = "".join(map(chr, [*range(0x20), *range(0x7f, 0xa0)]))
    shown = escape_controls(controls)
    assert shown.isprintable() and shown.isascii()
    assert len(shown) > len(controls)


def test_escape_tree_escapes_strings_and_keys_only():
    doc = {"a\x1b": ["x\ny", 1, None, True, 2.5, {"k": "\x07"}],
           "n": 3, "t": ("\t",)}
    assert escape_tree(doc) == {"a\\x1b": ["x\\ny", 1, None, True, 2.5,
                                           {"k": "\\x07"}],
                                "n": 3, "t": ["\\t"]}
