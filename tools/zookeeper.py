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
import tempfile
import threading
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

    tick_ms = 2000  # ZooKeeper's tickTime

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
        self._stores: tuple[str, str] | None = None

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
            f"tickTime={self.tick_ms}",
            f"dataDir={self.data_dir}/data",
            f"clientPort={self.port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "maxClientCnxns=0",
            # Keep sessions short-lived in tests that expire them.
            "minSessionTimeout=1000",
            *self._extra_config(),
        ]
        if self.tls:
            tls_dir = os.path.join(self.data_dir, "tls")
            if self.certs is None:
                # Once: a restarted server keeps the CA its clients trust.
                self.certs = certs_mod.make_ca(tls_dir)
                self._stores = certs_mod.make_java_stores(self.certs,
                                                          tls_dir)
            keystore, truststore = self._stores
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

    def _extra_config(self) -> list[str]:
        """More zoo.cfg lines (ensemble members add their quorum)."""
        return []

    def start(self, timeout: float = 30.0) -> "ZooKeeperServer":
        self._spawn()
        self._wait_ruok(timeout)
        return self

    def _spawn(self) -> None:
        """Start the JVM without waiting for it to answer."""
        if self.process is not None:
            raise RuntimeError("ZooKeeper server already started")
        missing = [j for j in ZK_JARS if not os.path.exists(j)]
        if missing or not shutil.which("java"):
            raise RuntimeError(
                "ZooKeeper is not installed (need Debian packages 'zookeeper' "
                f"and a Java runtime); missing: {missing or ['java']}")
        os.makedirs(os.path.join(self.data_dir, "data"), exist_ok=True)
        cfg = self._write_config()
        self._log = open(self._log_path, "ab")
        self.process = subprocess.Popen(
            ["java", f"-Xmx{self.heap}",
             *(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
               if self.fast_start else []),
             "-Dzookeeper.forceSync=no",
             "-cp", ":".join(ZK_JARS),
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
            stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def _log_path(self) -> str:
        return os.path.join(self.data_dir, "zookeeper.log")

    def _wait_ruok(self, timeout: float) -> None:
        """Wait for ``imok``; on failure stop the server and raise with the
        tail of its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                break
            try:
                if four_letter(self.port) == "imok":
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        with open(self._log_path, errors="replace") as f:
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


class _EnsembleMember(ZooKeeperServer):
    """A ZooKeeperServer that is server ``myid`` of a quorum."""

    # Short ticks: elections and syncs (counted in ticks) settle fast.
    tick_ms = 500

    def __init__(self, data_dir: str, myid: int, quorum: list[str],
                 **kw) -> None:
        super().__init__(data_dir, **kw)
        self.myid = myid
        self.quorum = quorum

    def _extra_config(self) -> list[str]:
        with open(os.path.join(self.data_dir, "data", "myid"), "w") as f:
            f.write(f"{self.myid}\n")
        return ["initLimit=10", "syncLimit=5", "maxSessionTimeout=60000",
                *self.quorum]

    def mode(self) -> str | None:
        """``leader``, ``follower``, or None when not serving."""
        try:
            answer = four_letter(self.port, "srvr")
        except OSError:
            return None
        for line in answer.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None


class ZooKeeperEnsemble:
    """``size`` ZooKeeper servers forming one quorum on 127.0.0.1.

    >>> ens = ZooKeeperEnsemble("/tmp/ens", size=3).start()
    >>> ens.hosts           # "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
    >>> with ZooKeeperEnsemble() as ens: ...   # in a temporary directory
    >>> ens.kill(ens.leader())   # kill -9 one member; quorum survives
    >>> ens.restart(i)      # same data dir and ports
    >>> ens.stop()

    ``start()`` launches every JVM, then waits until each answers ``ruok``
    and exactly one reports ``Mode: leader`` (the others ``follower``); on
    timeout every member is stopped and the error names the modes seen.
    """

    def __init__(self, workdir: str | None = None, size: int = 3,
                 heap: str = "192m"):
        if size < 1:
            raise ValueError("an ensemble needs at least one server")
        ports = [(free_port(), free_port()) for _ in range(size)]
        # Without a workdir: a temporary one, removed by stop().
        self._own_workdir = workdir is None
        self.workdir = os.path.abspath(
            workdir or tempfile.mkdtemp(prefix="zk-ensemble-"))
        self.servers: list[_EnsembleMember] = []
        quorum = [f"server.{i + 1}=127.0.0.1:{p}:{e}"
                  for i, (p, e) in enumerate(ports)]
        for i in range(size):
            self.servers.append(_EnsembleMember(
                os.path.join(self.workdir, f"zk{i + 1}"), i + 1, quorum,
                heap=heap))

    @property
    def hosts(self) -> str:
        return ",".join(s.hosts for s in self.servers)

    def start(self, timeout: float = 60.0) -> "ZooKeeperEnsemble":
        for server in self.servers:
            server._spawn()
        try:
            for server in self.servers:
                server._wait_ruok(timeout)
            self.wait_quorum(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def modes(self) -> list[str | None]:
        return [s.mode() if s.process is not None else None
                for s in self.servers]

    def leader(self) -> int | None:
        """Index of the current leader, None while there is none."""
        modes = self.modes()
        return modes.index("leader") if "leader" in modes else None

    def wait_quorum(self, timeout: float = 60.0) -> None:
        """Until one running member leads and every other running member
        follows."""
        deadline = time.monotonic() + timeout
        while True:
            modes = [m for s, m in zip(self.servers, self.modes())
                     if s.process is not None]
            if modes.count("leader") == 1 and \
                    modes.count("follower") == len(modes) - 1:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"ZooKeeper ensemble has no quorum "
                                   f"after {timeout:g} s: modes {modes}")
            time.sleep(0.1)

    def kill(self, index: int) -> None:
        """kill -9 member ``index`` (0-based)."""
        self.servers[index].kill()

    def restart(self, index: int, timeout: float = 60.0) -> None:
        """Start a killed/stopped member again (same ports and data)."""
        self.servers[index].start(timeout)
        self.wait_quorum(timeout)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ZooKeeperEnsemble":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class TcpGate:
    """A loopback TCP forwarder that can cut a client off its server.

    Fault tests point a client at ``gate.port`` instead of the server's
    port; ``close()`` drops every forwarded connection and refuses new ones
    (a network partition: the server keeps running and expires the
    session after its timeout), ``open()`` lets connections through again.
    ``mute()`` drops what the server sends until ``unmute()`` (requests
    still reach it: a write lands and its reply is lost).

    >>> gate = TcpGate(server.port).start()
    >>> gate.close(); ...; gate.open(); gate.stop()
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._stopped = threading.Event()
        self._muted = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "TcpGate":
        self._listener.listen(64)
        threading.Thread(target=self._accept, name="tcpgate-accept",
                         daemon=True).start()
        return self

    def close(self) -> None:
        """Cut every connection; refuse new ones until ``open()``."""
        self._open.clear()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            _shut(conn)

    def open(self) -> None:
        self._open.set()

    def mute(self) -> None:
        """Drop everything the server sends (replies, notifications)."""
        self._muted.set()

    def unmute(self) -> None:
        self._muted.clear()

    def stop(self) -> None:
        self._stopped.set()
        self.close()
        _shut(self._listener)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                _shut(client)
                continue
            try:
                upstream = socket.create_connection(
                    ("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _shut(client)
                continue
            with self._lock:
                self._conns += [client, upstream]
            for src, dst, muted in ((client, upstream, None),
                                    (upstream, client, self._muted)):
                threading.Thread(target=_pump, args=(src, dst, muted),
                                 name="tcpgate-pump", daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket,
          muted: threading.Event | None = None) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if muted is None or not muted.is_set():
                dst.sendall(data)
    except OSError:
        pass
    _shut(src)
    _shut(dst)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
