"""Content negotiation of cli.md §3: JSON only when the client prefers it.

The ``Accept`` header is matched against ``text/html``, ``text/plain`` and
``application/json``, in that order of preference: each offer gets the
quality of the most specific media range that matches it (exact type, then
``type/*``, then ``*/*``), the highest quality wins, and ties go to the
earlier offer.  So a browser (``text/html,...,*/*;q=0.8``) and curl
(``*/*``) get the text table, ``Accept: application/json`` gets JSON.
A malformed header never fails a request: unparsable parts are ignored.
"""

from __future__ import annotations

__all__ = ["OFFERS", "best_offer", "wants_json"]

OFFERS = ("text/html", "text/plain", "application/json")


def _ranges(accept: str) -> list[tuple[str, str, float]]:
    out = []
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        if "/" not in media:
            continue
        main, _, sub = media.lower().partition("/")
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        out.append((main.strip(), sub.strip(), quality))
    return out


def _quality(offer: str, ranges: list[tuple[str, str, float]]) -> float:
    main, _, sub = offer.partition("/")
    best_rank, quality = -1, 0.0
    for r_main, r_sub, q in ranges:
        if (r_main, r_sub) == (main, sub):
            rank = 2
        elif r_main == main and r_sub == "*":
            rank = 1
        elif (r_main, r_sub) == ("*", "*"):
            rank = 0
        else:
            continue
        if rank > best_rank:
            best_rank, quality = rank, q
    return quality


def best_offer(accept: str | None) -> str:
    """The offer the client prefers (``text/html`` if it has no opinion)."""
    if not accept or not accept.strip():
        return OFFERS[0]
    ranges = _ranges(accept)
    best, best_q = OFFERS[0], 0.0
    for offer in OFFERS:
        q = _quality(offer, ranges)
        if q > best_q:
            best, best_q = offer, q
    return best


def wants_json(accept: str | None) -> bool:
    return best_offer(accept) == "application/json"
