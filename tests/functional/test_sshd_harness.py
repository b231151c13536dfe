"""tools/sshd.py: the test harness itself (restart keeps identity, errors)."""

from __future__ import annotations

import socket

import pytest

from tools.sshd import SSHServer, read_banner

pytestmark = pytest.mark.functional


def test_restart_keeps_port_and_keys(sshd_factory):
    server = sshd_factory(key_types=("ed25519", "ecdsa"))
    with pytest.raises(FileNotFoundError):
        server.host_keys  # no keys before the first start
    server.start()
    port, keys = server.port, server.host_keys
    assert [k.split()[0] for k in keys] == ["ssh-ed25519",
                                            "ecdsa-sha2-nistp256"]
    assert read_banner(port).startswith("SSH-2.0-OpenSSH")
    server.stop()
    assert read_banner(port) is None
    server.start()
    assert (server.port, server.host_keys) == (port, keys)
    with pytest.raises(RuntimeError, match="already started"):
        server.start()


def test_start_failure_reports_log(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        server = SSHServer(str(tmp_path), port=busy.getsockname()[1],
                           key_types=("ed25519",))
        with pytest.raises(RuntimeError, match="(?s)did not start.*Bind"):
            server.start(timeout=5)
        assert server.process is None


def test_unknown_key_type_rejected(tmp_path):
    with pytest.raises(ValueError, match="dsa"):
        SSHServer(str(tmp_path), key_types=("dsa",))
