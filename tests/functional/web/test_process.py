"""The web app inside a real ``nodepool-launcher -f`` process, on the port
of its config's ``webapp`` section, stopped with the launcher by SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.functional.launcher.helpers import fake_provider, wait_for
from tests.functional.web.helpers import get
from tools.zookeeper import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def process(env, tmp_path):
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        proc_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("STATSD_")}
        proc_env["PYTHONPATH"] = ROOT
        log = open(tmp_path / f"launcher{len(procs)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "nodepool.cmd.launcher", "-f",
             "-c", env.config_path, *args],
            cwd=ROOT, env=proc_env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT)
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_launcher_process_serves_the_web_app(env, process, tmp_path):
    port = free_port()
    env.write_config([fake_provider()],
                     webapp={"port": port, "listen_address": "127.0.0.1"})
    proc = process()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: port_open(port) and get(f"{url}/ready").status == 200,
             timeout=30, what="/ready from the launcher process")
    rid = env.zuul.submit(["small"])
    request = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert request["state"] == "fulfilled"
    rows = wait_for(lambda: get(f"{url}/node-list",
                                accept="application/json").json(),
                    what="the node in /node-list")
    assert [row["id"] for row in rows] == request["nodes"]
    assert "nodepool_launches_total" in get(f"{url}/metrics").text
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert not port_open(port)


def test_no_webapp_serves_nothing(env, process, tmp_path):
    port = free_port()
    env.write_config([fake_provider()],
                     webapp={"port": port, "listen_address": "127.0.0.1"})
    proc = process("--no-webapp")
    # a served request: the launcher is well past where it would have
    # started the web app
    rid = env.zuul.submit(["small"])
    assert env.zuul.wait_state(rid, {"fulfilled", "failed"})["state"] \
        == "fulfilled"
    assert not port_open(port)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    log = (tmp_path / "launcher0.log").read_text()
    assert "Stopped" in log and "Web app listening" not in log
