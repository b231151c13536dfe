"""The installed ``nodepool`` console script, run as a real process."""

import os
import subprocess
import sys

from nodepool.zk import Node, NodeState

NODEPOOL = os.path.join(os.path.dirname(sys.executable), "nodepool")


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([NODEPOOL, *argv], capture_output=True,
                          text=True, timeout=timeout)


def test_console_script_lists_and_holds_over_tls(config_file, seed):
    node = Node(state=NodeState.READY, provider="static-lab",
                type=["small"], external_id="host1")
    seed.store_node(node)
    listed = run("-c", config_file, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""
    lines = listed.stdout.splitlines()
    assert lines[1].split("|")[1:-1] == [
        " ID         ", " Provider   ", " Label ", " Server ID ",
        " Public IPv4 ", " IPv6 ", " State ", " Age         ", " Locked   "]
    assert f"| {node.id} | static-lab | small | host1     |" in lines[3]
    assert "| ready |" in lines[3] and lines[3].endswith("| unlocked |")
    held = run("-c", config_file, "hold", node.id)
    assert held.returncode == 0, held.stderr
    assert seed.get_node(node.id).state == NodeState.HOLD


def test_console_script_errors(config_file):
    missing = run("-c", config_file, "delete", "0000000042")
    assert (missing.returncode, missing.stderr) == \
        (1, "Node id 0000000042 not found\n")
    assert run().returncode == 1
    assert run("nonsense").returncode == 2
    version = run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("Nodepool version: ")
