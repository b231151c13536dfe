"""Fields with terminal escape sequences are printed escaped by every CLI
table; ``--json`` carries the real values (JSON escapes them itself)."""

import json

from nodepool.zk import Node, NodeRequest, NodeState
from nodepool.zk.image import upload_path

NOW = 1_700_000_000.0
# clears the screen, retitles the terminal, rings the bell, fakes a row
REASON = "\x1b[2J\x1b]0;owned\x07ok\n| 0000000099 | fake |\u202e"
SHOWN = "\\x1b[2J\\x1b]0;owned\\x07ok\\n| 0000000099 | fake |\\u202e"


def assert_safe(out: str) -> None:
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    # one row per record: every line of each table has the same width
    for block in out.split("\n\n"):
        lines = [line for line in block.splitlines() if line.startswith(
            ("+", "|"))]
        assert len({len(line) for line in lines}) <= 1, block


def test_hold_reason_is_escaped_in_list_detail(cli, seed):
    node = Node(state=NodeState.READY, state_time=NOW, provider="static-lab",
                type=["small"])
    seed.store_node(node)
    held = cli("hold", node.id, "--reason", REASON)
    assert held.rc == 0
    assert seed.get_node(node.id).comment == REASON      # stored as given
    result = cli("list", "--detail")
    assert result.rc == 0
    assert_safe(result.out)
    assert SHOWN in result.out
    assert len(result.out.splitlines()) == 5             # one row
    rows = json.loads(cli("list", "--detail", "--json").out)
    assert rows[0]["comment"] == REASON


def test_zuul_and_builder_fields_are_escaped(cli, seed, zk):
    seed.submit_request(NodeRequest(state="requested", state_time=NOW,
                                    node_types=["small\x1b[1m"],
                                    requestor="zuul\x1b[31m-evil"),
                        priority="100")
    kazoo = zk.kazoo()
    kazoo.create(upload_path("ubuntu", "b1", "static-lab") + "/",
                 json.dumps({"state": "ready", "state_time": NOW,
                             "external_name": "img\x1b[8m",
                             "external_id": "ami\r-1"}).encode(),
                 sequence=True, makepath=True)
    kazoo.stop()
    requests = cli("request-list")
    assert_safe(requests.out)
    assert "zuul\\x1b[31m-evil" in requests.out
    assert "small\\x1b[1m" in requests.out
    images = cli("image-list")
    assert_safe(images.out)
    assert "img\\x1b[8m" in images.out and "ami\\r-1" in images.out
    raw = json.loads(cli("request-list", "--json").out)
    assert raw[0]["requestor"] == "zuul\x1b[31m-evil"
