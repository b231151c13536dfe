"""The README's first command: the demo runs end to end, non-interactively."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_demo_runs_end_to_end(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--latency", "0.3",
         "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "all requests fulfilled" in text
    assert "the launcher deleted the used nodes" in text
    assert "| ubuntu-large |" in text and "| static-host  |" in text
    assert "demo finished" in text
