"""nodepool.stats over a real UDP socket: the exact lines a collector sees."""

from __future__ import annotations

import math
import socket

import pytest

from nodepool.stats import NODE_STATES, get_client

pytestmark = pytest.mark.functional


class Listener:
    """A UDP socket on 127.0.0.1 collecting statsd lines."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]
        self.datagrams = 0

    def env(self) -> dict[str, str]:
        return {"STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(self.port)}

    def lines(self, count: int, timeout: float = 5.0) -> list[str]:
        """Exactly ``count`` lines; fails if fewer arrive in time."""
        out: list[str] = []
        self.sock.settimeout(timeout)
        while len(out) < count:
            data, _ = self.sock.recvfrom(65536)
            self.datagrams += 1
            out += data.decode().split("\n")
        return out

    def assert_silent(self, timeout: float = 0.3) -> None:
        self.sock.settimeout(timeout)
        with pytest.raises(TimeoutError):
            data, _ = self.sock.recvfrom(65536)
            pytest.fail(f"unexpected datagram {data!r}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def reporter(listener):
    rep = get_client(listener.env())
    yield rep
    rep.close()


def test_launch_result_lines(listener, reporter):
    reporter.launch_result("aws", "us-east-1a", "zuul.example.org:9000",
                           "error.quota", 2.5)
    lines = listener.lines(8)
    expected = []
    for key in ("nodepool.launch",
                "nodepool.launch.provider.aws",
                "nodepool.launch.provider.aws.us-east-1a",
                "nodepool.launch.requestor.zuul_example_org_9000"):
        expected += [f"{key}.error.quota:1|c",
                     f"{key}.error.quota:2500.000000|ms"]
    assert lines == expected
    # One call, one pipeline: the eight lines share a datagram.
    assert listener.datagrams == 1
    listener.assert_silent()


def test_launch_result_without_az_or_requestor(listener, reporter):
    reporter.launch_result("os", None, None, "ready", 0.001)
    assert listener.lines(4) == [
        "nodepool.launch.ready:1|c",
        "nodepool.launch.ready:1.000000|ms",
        "nodepool.launch.provider.os.ready:1|c",
        "nodepool.launch.provider.os.ready:1.000000|ms"]
    listener.assert_silent()


def test_node_gauges_lines(listener, reporter):
    nodes = [{"state": "ready", "provider": "p1", "type": ["small"]},
             {"state": "used", "provider": "p1", "type": ["small"]}]
    reporter.node_gauges(nodes, ["p1"], ["small"])
    lines = listener.lines(3 * len(NODE_STATES))
    assert len(lines) == 33
    assert "nodepool.nodes.ready:1|g" in lines
    assert "nodepool.nodes.building:0|g" in lines
    assert "nodepool.provider.p1.nodes.used:1|g" in lines
    assert "nodepool.label.small.nodes.deleted:0|g" in lines
    # 33 lines do not fit one 512-byte datagram; the pipeline splits them.
    assert listener.datagrams > 1
    listener.assert_silent()


def test_pool_and_quota_gauges(listener, reporter):
    reporter.addressable_requests("aws", "main", 7)
    reporter.max_servers("aws", 30.0)
    reporter.max_servers("aws", math.inf)
    reporter.tenant_limits("tenant.one", {
        "cores": 100.0, "ram": math.inf, "instances": 5,
        "x.y:z": 1.5, "volumes": None})
    assert listener.lines(5) == [
        "nodepool.provider.aws.pool.main.addressable_requests:7|g",
        "nodepool.provider.aws.max_servers:30|g",
        "nodepool.tenant_limits.tenant_one.cores:100|g",
        "nodepool.tenant_limits.tenant_one.instances:5|g",
        "nodepool.tenant_limits.tenant_one.x_y_z:1.5|g"]
    listener.assert_silent()


def test_leaked_and_raw_helpers(listener, reporter):
    reporter.leaked("aws", "instances")
    reporter.leaked("aws", "volumes", 3)
    reporter.incr("nodepool.custom.counter")
    reporter.gauge("nodepool.custom.gauge", 4)
    reporter.timing("nodepool.custom.timer", 12.5)
    assert listener.lines(5) == [
        "nodepool.provider.aws.leaked.instances:1|c",
        "nodepool.provider.aws.leaked.volumes:3|c",
        "nodepool.custom.counter:1|c",
        "nodepool.custom.gauge:4|g",
        "nodepool.custom.timer:12.500000|ms"]


@pytest.fixture
def default_port_listener():
    """A listener on the statsd default port, where a wrongly enabled
    client would send (skipped if something else holds the port)."""
    try:
        lst = Listener(8125)
    except OSError:
        pytest.skip("UDP 127.0.0.1:8125 is in use")
    yield lst
    lst.close()


def test_disabled_sends_nothing(default_port_listener):
    # Same calls as above but without STATSD_*: the default port hears
    # nothing (enabled, the client would have sent to localhost:8125).
    listener = default_port_listener
    rep = get_client({"STATSD_PREFIX": "ignored"})
    rep.launch_result("aws", "az", "req", "ready", 1.0)
    rep.node_gauges([{"state": "ready", "provider": "aws"}], ["aws"], [])
    rep.max_servers("aws", 5)
    rep.tenant_limits("t", {"cores": 1})
    rep.leaked("aws", "instances")
    listener.assert_silent()
    # Control: enabled by STATSD_PORT alone, the same listener hears it.
    rep = get_client({"STATSD_PORT": "8125"})
    try:
        rep.leaked("aws", "instances")
        assert listener.lines(1) == [
            "nodepool.provider.aws.leaked.instances:1|c"]
    finally:
        rep.close()
