"""LaunchRecorder: counts, cumulative latency buckets, recent errors."""

import math

from nodepool.launcher import nodelaunch
from nodepool.launcher.nodelaunch import LaunchEvent
from nodepool.web.launches import (LATENCY_BUCKETS, MESSAGE_LIMIT, Histogram,
                                   LaunchRecorder)


def event(result="ready", elapsed=1.0, provider="p", message=None,
          manager=None, node_id="0000000001", when=1000.0):
    return LaunchEvent(manager, provider, node_id, result, elapsed, message,
                       when)


def test_histogram_buckets_are_cumulative_and_inclusive():
    h = Histogram.empty()
    for value in (0.05, 0.1, 0.3, 7, 5000):
        h.observe(value)
    buckets = dict(h.cumulative())
    assert buckets[0.1] == 2           # le is inclusive
    assert buckets[0.25] == 2
    assert buckets[0.5] == 3
    assert buckets[10.0] == 4
    assert buckets[float(LATENCY_BUCKETS[-1])] == 4
    assert buckets[math.inf] == 5 == h.count
    assert h.sum == 0.05 + 0.1 + 0.3 + 7 + 5000
    counts = [n for _, n in h.cumulative()]
    assert counts == sorted(counts)


def test_counts_per_provider_and_result():
    recorder = LaunchRecorder()
    recorder.record(event())
    recorder.record(event(elapsed=3))
    recorder.record(event(provider="q", result="error.quota",
                          message="over quota"))
    hists = recorder.histograms()
    assert hists[("p", "ready")].count == 2
    assert hists[("p", "ready")].sum == 4
    assert hists[("q", "error.quota")].count == 1
    # readers get copies
    hists[("p", "ready")].observe(1)
    assert recorder.histograms()[("p", "ready")].count == 2


def test_recent_errors_newest_first_bounded_and_shortened():
    recorder = LaunchRecorder(keep_errors=3)
    for i in range(5):
        recorder.record(event(result="error.status", message=f"boom {i}",
                              when=1000.0 + i))
    recorder.record(event(result="error.keyscan", message="x" * 1000))
    recorder.record(event(result="error.zksession"))
    recorder.record(event())     # ready: not an error
    errors = recorder.recent_errors()
    assert [e.result for e in errors] == ["error.zksession", "error.keyscan",
                                          "error.status"]
    assert errors[0].message == "error.zksession"   # no message given
    assert len(errors[1].message) == MESSAGE_LIMIT
    assert errors[2].message == "boom 4"
    assert len(recorder.recent_errors(limit=1)) == 1


def test_only_accepted_events_and_listener_lifecycle():
    mine = object()
    recorder = LaunchRecorder(lambda e: e.manager is mine)
    recorder.start()
    try:
        for callback in list(nodelaunch._listeners):
            callback(event(manager=mine))
            callback(event(manager=object()))
    finally:
        recorder.stop()
    assert recorder.histograms()[("p", "ready")].count == 1
    assert recorder.record not in nodelaunch._listeners
