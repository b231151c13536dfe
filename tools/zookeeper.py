"""Run a real ZooKeeper server (Debian package ``zookeeper``) as a child process.

Used by the test suite, the demo and the benchmarks.  The JVM is started
directly (Debian's ``zkServer.sh`` ignores the config/log directories given in
the environment), bound to 127.0.0.1 on free ports, with its data in a
directory the caller owns.  With ``tls=True`` the server also listens on a
secure port that demands client certificates (mutual TLS); the certificates
are generated into the data directory.

If the server does not answer ``ruok`` within the start timeout the process is
killed and its log is included in the raised error, so a broken Java or a
missing package is reported as such instead of as a hanging test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

from tools import certs as certs_mod

ZK_JARS = ["/usr/share/java/zookeeper.jar",
           "/usr/share/java/slf4j-simple.jar",
           # Debian's zookeeper.jar manifest misses these two; without them
           # TLS connections are dropped silently.
           "/usr/share/java/netty-codec.jar",
           "/usr/share/java/netty-resolver.jar"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(port: int, word: str = "ruok", timeout: float = 1.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while True:
            data = s.recv(4096)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


class ZooKeeperServer:
    """One standalone ZooKeeper server owned by this process.

    >>> zk = ZooKeeperServer("/tmp/zkdata", tls=True)
    >>> zk.start()
    >>> zk.hosts            # "127.0.0.1:PORT" (plain)
    >>> zk.tls_hosts        # "127.0.0.1:PORT" (mutual TLS), certs in zk.certs
    >>> zk.stop()
    """

    def __init__(self, data_dir: str, tls: bool = False,
                 port: int | None = None, secure_port: int | None = None,
                 heap: str = "256m", fast_start: bool = True):
        self.data_dir = os.path.abspath(data_dir)
        self.tls = tls
        self.port = port or free_port()
        self.secure_port = (secure_port or free_port()) if tls else None
        self.heap = heap
        # C1-only JIT and serial GC start faster and use less CPU for short
        # test runs; benchmarks want the full JIT.
        self.fast_start = fast_start
        self.certs: certs_mod.CertSet | None = None
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls_hosts(self) -> str:
        if not self.tls:
            raise RuntimeError("server was started without TLS")
        return f"127.0.0.1:{self.secure_port}"

    def _write_config(self) -> str:
        lines = [
            "tickTime=2000",
            f"dataDir={self.data_dir}/data",
            f"clientPort={self.port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "maxClientCnxns=0",
            # Keep sessions short-lived in tests that expire them.
            "minSessionTimeout=1000",
        ]
        if self.tls:
            tls_dir = os.path.join(self.data_dir, "tls")
            self.certs = certs_mod.make_ca(tls_dir)
            keystore, truststore = certs_mod.make_java_stores(self.certs,
                                                              tls_dir)
            pw = certs_mod.STORE_PASSWORD
            lines += [
                f"secureClientPort={self.secure_port}",
                "secureClientPortAddress=127.0.0.1",
                "serverCnxnFactory="
                "org.apache.zookeeper.server.NettyServerCnxnFactory",
                f"ssl.keyStore.location={keystore}",
                f"ssl.keyStore.password={pw}",
                "ssl.keyStore.type=PKCS12",
                f"ssl.trustStore.location={truststore}",
                f"ssl.trustStore.password={pw}",
                "ssl.trustStore.type=PKCS12",
                "ssl.clientAuth=need",
            ]
        path = os.path.join(self.data_dir, "zoo.cfg")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 30.0) -> "ZooKeeperServer":
        if self.process is not None:
            raise RuntimeError("ZooKeeper server already started")
        missing = [j for j in ZK_JARS if not os.path.exists(j)]
        if missing or not shutil.which("java"):
            raise RuntimeError(
                "ZooKeeper is not installed (need Debian packages 'zookeeper' "
                f"and a Java runtime); missing: {missing or ['java']}")
        os.makedirs(os.path.join(self.data_dir, "data"), exist_ok=True)
        cfg = self._write_config()
        log_path = os.path.join(self.data_dir, "zookeeper.log")
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            ["java", f"-Xmx{self.heap}",
             *(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
               if self.fast_start else []),
             "-Dzookeeper.forceSync=no",
             "-cp", ":".join(ZK_JARS),
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
            stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if four_letter(self.port) == "imok":
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        with open(log_path, errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"ZooKeeper did not start on port {self.port}:\n"
                           f"{tail}")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """Kill -9 (fault tests); ``start()`` may be called again after."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
