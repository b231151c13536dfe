"""Accept-header matching of cli.md §3."""

import pytest

from nodepool.web.negotiate import best_offer, wants_json

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("accept,offer", [
    (None, "text/html"),
    ("", "text/html"),
    ("*/*", "text/html"),
    (BROWSER, "text/html"),
    ("text/plain", "text/plain"),
    ("text/*", "text/html"),
    ("application/json", "application/json"),
    ("application/*", "application/json"),
    ("APPLICATION/JSON", "application/json"),
    ("application/json;q=0.5, text/plain", "text/plain"),
    ("application/json;q=0.5, */*;q=0.5", "text/html"),   # tie: earlier wins
    ("text/*;q=0.2, application/json;q=0.3", "application/json"),
    ("*/*, text/html;q=0", "text/plain"),        # specific range beats */*
    ("text/html;q=0, text/plain;q=0, application/json;q=0", "text/html"),
    ("image/png", "text/html"),                  # nothing offered matches
    ("application/json; charset=utf-8; q=0.9", "application/json"),
    ("garbage, ;;, application/json;q=x", "text/html"),
])
def test_best_offer(accept, offer):
    assert best_offer(accept) == offer


def test_wants_json_only_when_json_is_the_best_match():
    assert wants_json("application/json")
    assert not wants_json("application/json;q=0.1, text/plain;q=0.2")
    assert not wants_json(None)
