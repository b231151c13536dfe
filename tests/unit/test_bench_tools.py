"""The figures the benchmark and soak tools compute from what they saw."""

from __future__ import annotations

from tools.bench_aws import physical_limit
from tools.pyspy_top import summarise
from tools.soak import stalls, timeline
from tools.zkops import node_id, subtree

EC2 = {"run_instances": {"burst": 5, "rate": 2, "enabled": True},
       "run_instances_resource": {"burst": 1000, "rate": 2,
                                  "enabled": True}}


def test_physical_limit_of_a_burst_under_the_ec2_buckets():
    # 20 calls of 50: five at once, the 20th 7.5 s later, one latency on.
    assert physical_limit(1000, 50, 1.5, EC2) == 9.0
    # Within the call burst: one latency.
    assert physical_limit(100, 50, 1.5, EC2) == 1.5
    # Past the instance burst: 1100 instances wait for 50 more tokens.
    assert physical_limit(1100, 50, 1.5, EC2) == 51.5
    # Buckets off: one latency whatever the count.
    assert physical_limit(1000, 50, 1.5, {}) == 1.5


def test_stalls_are_runs_without_fulfilment_while_requests_are_open():
    start = 1000.0
    submitted = [start + t for t in range(10)]
    # fulfilled at t 1, 2, then nothing until t 7, 8
    fulfilled = [start + 1.5, start + 2.5, start + 7.5, start + 8.2]
    calls = [{"outcome": "ok", "time": start + 4.1, "launched": 3},
             {"outcome": "throttled", "time": start + 4.2, "launched": 0}]
    bins = timeline(start, start + 10, submitted, fulfilled, calls)
    assert [b["fulfilled"] for b in bins[:9]] == [0, 1, 1, 0, 0, 0, 0, 1, 1]
    assert bins[4]["run_calls"] == 1 and bins[4]["launched"] == 3
    assert bins[3]["open"] == 1      # three submitted, two fulfilled
    # t 3-6 (4 s), and t 9-10 with two still open at the end; t 0 held
    # nothing open yet
    assert stalls(bins) == [(3, 4), (9, 2)]
    assert stalls(bins, at_least=5) == []


def test_profile_summary_counts_self_total_and_entry_points():
    stacks = [
        (["Thread.run (threading.py:982)",
          "PoolWorker._run (nodepool/launcher/poolworker.py:279)",
          "parse (botocore/parsers.py:10)"], 3),
        (["Thread.run (threading.py:982)",
          "PoolWorker._run (nodepool/launcher/poolworker.py:280)",
          "parse (botocore/parsers.py:12)",
          "parse (botocore/parsers.py:40)"], 1),
        (["Thread.run (threading.py:982)",
          "InstanceWatcher._run (nodepool/driver/aws/watcher.py:95)"], 2),
    ]
    total, own, anywhere, entries = summarise(stacks)
    assert total == 6
    assert own["parse (botocore/parsers.py)"] == 4
    assert anywhere["parse (botocore/parsers.py)"] == 4   # once per stack
    assert anywhere["Thread.run (threading.py)"] == 6
    assert entries == {
        "PoolWorker._run (nodepool/launcher/poolworker.py)": 4,
        "InstanceWatcher._run (nodepool/driver/aws/watcher.py)": 2}


def test_zkops_names_the_node_a_read_is_of():
    assert node_id("/nodepool/nodes/0000000042") == "0000000042"
    assert node_id("/chroot/nodepool/nodes/0000000042") == "0000000042"
    assert node_id("/nodepool/nodes/0000000042/lock/x") is None
    assert node_id("/nodepool/requests/200-0000000001") is None
    assert subtree("/nodepool/launcher-usage/nl1-ab") == "other"


def test_thread_families_drop_the_number_and_name_what_changed():
    from collections import Counter

    from tools.soak import DUMP_THREAD, families_changed, thread_family
    assert thread_family("PoolWorker.p-main-io_12") == "PoolWorker.p-main-io"
    assert thread_family("ThreadPoolExecutor-3_0") == "ThreadPoolExecutor-3"
    assert thread_family("MainThread") == "MainThread"
    dump = ("2026-12-03 WARNING nodepool: Stack dump:\n"
            "Thread 140 (MainThread):\n  File ...\n"
            "Thread 141 (aws-create-7):\n  File ...\n")
    assert DUMP_THREAD.findall(dump) == ["MainThread", "aws-create-7"]
    before = Counter({"aws-create": 3, "MainThread": 1, "gone": 1})
    after = Counter({"aws-create": 5, "MainThread": 1, "new": 2})
    assert families_changed(before, after) == [
        ("aws-create", 3, 5), ("gone", 1, 0), ("new", 0, 2)]
