"""Connection strings and TLS file checks (zookeeper.md §1); no server."""

from types import SimpleNamespace as NS

import pytest

from nodepool.zk import ZooKeeperClient, ZooKeeperError, build_hosts


def test_hosts_with_chroot_and_default_port():
    servers = [NS(host="zk1", port=2281, chroot="/nodepool"),
               NS(host="zk2", port=None, chroot="/nodepool")]
    assert build_hosts(servers) == "zk1:2281,zk2:2281/nodepool"


def test_ipv6_is_bracketed_and_dicts_accepted():
    assert build_hosts([{"host": "::1", "port": 2181}]) == "[::1]:2181"
    assert build_hosts([NS(host="fe80::1", port=1, chroot="x")]) == \
        "[fe80::1]:1/x"


def test_conflicting_chroots_are_an_error():
    with pytest.raises(ZooKeeperError):
        build_hosts([NS(host="a", port=1, chroot="/x"),
                     NS(host="b", port=1, chroot="/y")])


def test_unreadable_tls_file_is_named_before_connecting(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    missing = tmp_path / "nope" / "key.pem"
    config = NS(zookeeper_servers=[NS(host="127.0.0.1", port=1,
                                      chroot=None)],
                zookeeper_tls=NS(cert=str(cert), key=str(missing),
                                 ca=str(cert)),
                zookeeper_timeout=1.0)
    with pytest.raises(ZooKeeperError) as info:
        ZooKeeperClient.from_config(config)
    assert str(missing) in str(info.value)
    assert "key" in str(info.value)
