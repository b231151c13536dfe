"""Fields with control characters are shown escaped by the web text tables
and ``/status.json`` (the status page shows its strings as they are);
JSON list endpoints carry the real values."""

from __future__ import annotations

from tests.functional.launcher.helpers import wait_for
from tests.functional.web.helpers import get

COMMENT = "held\x1b[2J\x1b]0;owned\x07\nfake row\u202e"
SHOWN = "held\\x1b[2J\\x1b]0;owned\\x07\\nfake row\\u202e"
REQUESTOR = "zuul\x1b[31m\r\n-evil"
REQUESTOR_SHOWN = "zuul\\x1b[31m\\r\\n-evil"


def assert_safe(text: str) -> None:
    assert not any(c in text for c in "\x1b\x07\r\u202e"), repr(text)


def text_with(url: str, needle: str) -> str:
    """The text answer of ``url`` once it contains ``needle``."""
    def answer() -> str | None:
        text = get(url).text
        return text if needle in text else None
    return wait_for(answer, what=f"{needle!r} in {url}")


def status_request(url: str, request_id: str) -> dict:
    """The request's row in /status.json once it is there."""
    def row() -> dict | None:
        rows = get(f"{url}/status.json").json()["requests"]
        return next((r for r in rows if r["id"] == request_id), None)
    return wait_for(row, what=f"request {request_id} in /status.json")


def test_text_node_list_escapes_a_comment_json_keeps_it(site):
    node_id = site.nodes[0]
    site.env.zuul.set_node(node_id, comment=COMMENT)
    try:
        url = f"{site.url}/node-list?node_id={node_id}"
        wait_for(lambda: get(url, accept="application/json").json()[0][
            "comment"] == COMMENT, what="the comment in /node-list")
        text = text_with(url, SHOWN)
        assert_safe(text)
        assert len(text.splitlines()) == 5          # header + one row
    finally:
        site.env.zuul.set_node(node_id, comment=None)


def test_request_list_text_and_status_json_escape_zuul_fields(site):
    rid = site.env.zuul.submit(["nowhere-label\x1b[1m"], requestor=REQUESTOR,
                               tenant="tenant\x1b[0m")
    try:
        text = text_with(f"{site.url}/request-list", rid)
        assert_safe(text)
        assert REQUESTOR_SHOWN in text
        row = status_request(site.url, rid)
        assert row["requestor"] == REQUESTOR_SHOWN
        assert row["tenant"] == "tenant\\x1b[0m"
        assert row["node_types"] == ["nowhere-label\\x1b[1m"]
        raw = [r for r in get(f"{site.url}/request-list",
                              accept="application/json").json()
               if r["id"] == rid]
        assert raw[0]["requestor"] == REQUESTOR
    finally:
        site.env.zuul.delete_request(rid)
