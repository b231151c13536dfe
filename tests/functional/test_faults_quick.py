"""The fault suite's quick subset (issue 8): ``tools.faults --quick``.

Two kill -9 rounds of 20 requests, one ZooKeeper restart, one kill -9 of a
member of a 3-server ensemble and one round of injected cloud errors, each
against a real launcher process, a real ZooKeeper (mutual TLS; the
ensemble in plain TCP) and the local AWS.  The suite exits 1 when any
round lost a request, leaked or duplicated an instance or handed a node
out twice; this test also reads the table, so a zero exit with a
non-zero column (or no table at all) fails too.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
ZERO_COLUMNS = ("lost", "leaked", "alloc twice", "duplicated")
COLUMNS = ("scenario", "rounds", "requests", "fulfilled", "failed", "lost",
           "leaked", "alloc twice", "duplicated", "nodes left", "recover s")


def parse_table(text: str) -> dict[str, dict[str, float]]:
    """scenario → column → value, from the table the suite prints last."""
    lines = text.splitlines()
    start = max(i for i, line in enumerate(lines)
                if line.startswith("scenario"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        name, *values = line.split()
        rows[name] = dict(zip(COLUMNS[1:], map(float, values)))
    return rows


def test_quick_fault_suite_loses_and_leaks_nothing(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "tools.faults", "--quick", "--seed", "1",
         "--workdir", str(tmp_path)], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    table = parse_table(proc.stdout)
    assert set(table) == {"kill9", "zk-restart", "ensemble",
                          "cloud-errors"}, out
    assert table["kill9"]["rounds"] == 2 and table["kill9"]["requests"] == 40
    for name in ("zk-restart", "ensemble", "cloud-errors"):
        assert table[name]["rounds"] == 1, out
    for name, row in table.items():
        for column in ZERO_COLUMNS:
            assert row[column] == 0, (name, column, out[-6000:])
        assert row["fulfilled"] + row["failed"] == row["requests"], out
    # Cloud errors with launch retries left must not fail a request, and
    # ZooKeeper trouble is retried, never a reason to decline one.
    for name in ("cloud-errors", "zk-restart", "ensemble"):
        assert table[name]["failed"] == 0, (name, out[-6000:])
    # Lost requests are taken again within seconds of the dead session
    # expiring (zookeeper-timeout 4 s), not after a 60 s cleanup pass.
    assert table["kill9"]["recover s"] < 40, out[-6000:]
    assert proc.returncode == 0, out[-6000:]


def test_table_parser_reads_the_last_table():
    text = ("noise\nscenario  rounds\n----\nold 1 1 1 0 9 0 0 0 0 1.0\n\n"
            "scenario  rounds requests\n-----\n"
            "kill9 2 40 40 0 0 0 0 0 0 3.5\n\n")
    assert parse_table(text) == {"kill9": {
        "rounds": 2, "requests": 40, "fulfilled": 40, "failed": 0,
        "lost": 0, "leaked": 0, "alloc twice": 0, "duplicated": 0,
        "nodes left": 0, "recover s": 3.5}}
