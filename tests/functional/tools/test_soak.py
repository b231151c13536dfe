"""tools.soak: a short soak through the local AWS reports every figure and
loses nothing."""

import io

from tools import soak


def test_short_soak_through_the_local_aws_loses_nothing(tmp_path):
    out = io.StringIO()
    report = soak.run(str(tmp_path), minutes=20 / 60, rate=2.0, hold=1.0,
                      latency=0.2, sample=4.0, warmup=0.25, out=out)
    text = out.getvalue()
    # Every request submitted was fulfilled, its node accepted, used and
    # returned; the launcher deleted every node and terminated every
    # instance.
    assert report["submitted"] == 40, text
    assert report["fulfilled"] == 40 and report["failed"] == 0, text
    assert report["lost"] == 0 and report["errors"] == 0, text
    assert report["drained"] and report["returned_nodes"] == 40, text
    assert report["leaked_nodes"] == 0, text
    assert report["leaked_instances"] == 0, text
    # The figures sampled from the launcher and ZooKeeper: one row per
    # sample, each with every figure, and a growth after warm-up for each.
    assert len(report["samples"]) >= 3, text
    for row in report["samples"]:
        assert row["rss_mb"] > 10 and row["threads"] >= 2, row
        assert row["fds"] > 0 and row["watches"] >= 0, row
        # Beside them: ZooKeeper's latency over the interval (srst resets
        # it each row) and its znodes, and the launcher's CPU per request.
        assert 0 <= row["zk_avg_ms"] <= row["zk_max_ms"], row
        assert row["znodes"] > 10, row
    assert any(row["cpu_ms_per_req"] > 0 for row in report["samples"]), text
    assert set(report["growth"]) == set(soak.FIGURES)
    # The launcher's threads by family, from its SIGUSR2 dump, at the
    # end of warm-up and when submitting ended.
    warm, end = report["threads_by_family"]
    assert warm["MainThread"] == 1 and end["MainThread"] == 1, text
    assert sum(warm.values()) >= 5 and sum(end.values()) >= 5, text
    assert "launcher threads by family" in text
    # Timing on a shared machine: only that figures were measured.
    assert 0 < report["sustained_per_s"] <= 2.5, text
    assert 0 < report["p50_s"] <= report["p99_s"], text
    assert report["cpu"]["ms_per_request"]["nodepool-launcher"] > 0, text
    assert 0 < report["cpu"]["cores"]["harness"] < 2, text
    for figure in soak.FIGURES:
        assert figure in text
    assert "lost 0" in text and "leaked: 0 nodes, 0 instances" in text
