"""The launcher daemon: one process serving node requests from ZooKeeper.

Threads (each a named class with start/stop/join):

- ``NodePool`` (this module's main loop, every second): config hot reload,
  min-ready requests, the ``/ready`` flag;
- ``PoolWorker.<provider>-<pool>``: request routing and handling per pool,
  with its ZooKeeper round trips on ``PoolWorker.<provider>-<pool>-io_N``
  (taking requests, and ahead of those fulfilling and declining them);
- ``<provider>-loop``: advances the provider's launch and delete state
  machines (``ProviderManager``);
- the adapters' own create pools (``<provider>-create-N``) and delete
  batchers (``<provider>-delete-batcher``), and the shared keyscan pool;
- ``DeletedNodeWorker`` (~5 s) and ``CleanupWorker`` (~60 s, plus two cheap
  duties every second: lost requests, orphaned init nodes);
- ``StatsElection``: leader election for node gauges;
- ``RateBudget`` (every second): shares each provider's ``rate`` with the
  other launchers serving the same provider name (``ratebudget.py``);
- ``UsageBook`` (every second): this launcher's usage record, a summary of
  the nodes it created, which the other launchers' quota, deleter, cleanup
  and stats leader read instead of those nodes (``usagebook.py``);
- with tracing on (``nodepool.launcher.tracing``), the SDK's
  ``OtelBatchSpanRecordProcessor`` exporting spans.

Failure story: an invalid config is fatal at start and ignored (old config
kept, error logged) on reload.  A provider that fails to start is logged and
left out; the others run.  Nodes of a provider that a reload removes or
renames stay untouched until a provider of their name and kind returns
(``ProviderManager.owns``); a reload that gives a name to another cloud
driver while the old one's nodes exist leaves the new provider out (logged)
rather than let it delete nodes whose instances it can not see.  While the ZooKeeper session is suspended or lost
nothing is accepted, declined or written (``zk_ready()`` is false); launches
in flight when the session is lost fail (their locks are gone).  Stopping
releases the requests being handled (back to ``requested``) and unregisters
every component.
"""

from __future__ import annotations

import logging
import socket
import threading

from kazoo.protocol.states import KazooState

from nodepool import stats as stats_mod
from nodepool.config import ConfigError, config_mtimes, load_config
from nodepool.driver import adapter_class
from nodepool.driver.keyscan import KeyscanPool
from nodepool.launcher import tracing
from nodepool.launcher.cleanup import CleanupWorker
from nodepool.launcher.deleter import DeletedNodeWorker
from nodepool.launcher.minready import MinReady
from nodepool.launcher.poolworker import PoolWorker
from nodepool.launcher.provider import ProviderManager
from nodepool.launcher.ratebudget import RateBudget
from nodepool.launcher.statsleader import StatsElection
from nodepool.launcher.usagebook import NodeSummary, UsageBook
from nodepool.version import __version__
from nodepool.zk.client import ZooKeeperClient, build_hosts
from nodepool.zk.installation import installation_id
from nodepool.zk.models import LauncherComponent
from nodepool.zk.zookeeper import ZooKeeper

MODEL_API = 0


class Launcher:
    def __init__(self, config_path: str, secure_path: str | None = None,
                 stats=None, deleted_interval: float = 5.0,
                 cleanup_interval: float = 60.0, loop_interval: float = 1.0,
                 tracer=None):
        self.config_path = config_path
        self.secure_path = secure_path
        self.stats = stats or stats_mod.get_client()
        # Spans (off unless OTEL_TRACES_EXPORTER says otherwise).
        self.tracer = tracer if tracer is not None else tracing.from_env()
        self.log = logging.getLogger("nodepool.Launcher")
        self.loop_interval = loop_interval
        self.config = None
        self.zk: ZooKeeper | None = None
        self.client: ZooKeeperClient | None = None
        self.hostname = socket.gethostname()
        self.ready = threading.Event()
        self._mtimes = None
        self._managers: dict[str, ProviderManager] = {}
        # The manager that last ran under each provider name (stopped or
        # not): a reload that gives the name to another driver checks it.
        self._last_run: dict[str, ProviderManager] = {}
        self._workers: dict[str, PoolWorker] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._zk_ok = threading.Event()
        self.keyscan_pool = KeyscanPool(workers=16)
        self.deleted_worker = None
        self.cleanup_worker = None
        self._intervals = (deleted_interval, cleanup_interval)
        self.component: LauncherComponent | None = None
        self.min_ready = MinReady(self)
        self.stats_election: StatsElection | None = None
        self.rate_budget: RateBudget | None = None
        self.usage: UsageBook | None = None
        #: this installation's id (``nodepool.zk.installation``), read at
        #: start; every resource our providers create carries it
        self.installation: str | None = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        """Load the config, connect, start every worker (raises on bad config)."""
        self.config = load_config(self.config_path, self.secure_path)
        self._mtimes = config_mtimes(self.config_path, self.secure_path)
        self.client = ZooKeeperClient.from_config(self.config)
        self.client.add_connection_listener(self._connection_changed)
        self.client.connect()
        self._zk_ok.set()
        self.zk = ZooKeeper(self.client)
        self.zk.quarantine.add_listener(
            lambda entry: self.stats.bad_record(entry.kind))
        self._check_model_api()
        self.installation = installation_id(self.client.kazoo)
        self.log.info("Installation id %s", self.installation)
        self.component = LauncherComponent()
        self.component.hostname = self.hostname
        self.component.state = "initializing"
        self.component.version = __version__
        self.component.model_api = MODEL_API
        self.zk.register_launcher(self.component)
        self.zk.start_cache()
        self.zk.add_listener(self._zk_changed)
        self.usage = UsageBook(self.zk, self._summarize, self.hostname)
        self.usage.start()
        deleted, cleanup = self._intervals
        self.deleted_worker = DeletedNodeWorker(self, deleted)
        self.cleanup_worker = CleanupWorker(self, cleanup)
        self.rate_budget = RateBudget(self.client.kazoo, self.hostname)
        self.rate_budget.start()
        self._reconcile_providers()
        self.deleted_worker.start()
        self.cleanup_worker.start()
        self.stats_election = StatsElection(self,
                                            self.client.kazoo.Election)
        self.stats_election.start()
        self._thread = threading.Thread(target=self._run, name="NodePool",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Graceful stop: release handled requests, unregister, disconnect."""
        self._stop.set()
        self.log.info("Stopping launcher")
        for worker in list(self._workers.values()):
            worker.stop()
        for worker in list(self._workers.values()):
            worker.join()
        for manager in list(self._managers.values()):
            manager.stop()
        for w in (self.deleted_worker, self.cleanup_worker):
            if w is not None:
                w.stop()
                w.join()
        if self.stats_election is not None:
            self.stats_election.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.keyscan_pool.shutdown()
        self.tracer.shutdown()
        if self.rate_budget is not None:
            self.rate_budget.stop()
        if self.usage is not None:
            self.usage.stop()
        if self.zk is not None:
            try:
                if self.component is not None:
                    self.zk.unregister_component(self.component)
            except Exception:
                pass
            self.zk.stop_cache()
        if self.client is not None:
            self.client.disconnect()

    def join(self) -> None:
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(1.0)

    # -- accessors used by the workers ------------------------------------------
    def zk_ready(self) -> bool:
        return self._zk_ok.is_set() and not self._stop.is_set()

    def provider_managers(self) -> dict[str, ProviderManager]:
        return dict(self._managers)

    def pool_workers(self) -> dict[str, PoolWorker]:
        return dict(self._workers)

    def pool_components(self, fresh: bool = False) -> list:
        """Registered pool components (the watch cache unless ``fresh``)."""
        return self.zk.iter_pool_components(cached=not fresh)

    def _summarize(self, own: set[str]) -> dict[str, NodeSummary]:
        """Our usage record's nodes: those we created (``own``) of a
        provider we run, as quota costs them.  A node of a provider we
        no longer run is left out: the others read it (and delete it)."""
        managers = self.provider_managers()
        out = {}
        for node in self.zk.iter_nodes(cached=True, shared=True,
                                       ids=own.__contains__):
            manager = managers.get(node.provider)
            if manager is not None:
                out[node.id] = NodeSummary.of(node, manager.node_cost(node))
        return out

    # -- connection handling -------------------------------------------------
    def _connection_changed(self, state) -> None:
        if state == KazooState.CONNECTED:
            self._zk_ok.set()
        else:
            self._zk_ok.clear()
            if state == KazooState.LOST:
                # Our locks are gone: launches fail, handlers let go of
                # their requests without writing (cleanup resets them).
                for manager in self.provider_managers().values():
                    manager.session_lost()
                for worker in self.pool_workers().values():
                    worker.session_lost()

    def _zk_changed(self, *args) -> None:
        for worker in list(self._workers.values()):
            worker.wake()
        if self.deleted_worker is not None:
            self.deleted_worker.wake()

    def _check_model_api(self) -> None:
        level = self.zk.system_model_api()
        if level is not None and level > MODEL_API:
            raise RuntimeError(
                f"the system model API level is {level}, newer than this "
                f"launcher's {MODEL_API}: refusing to start")

    # -- the main loop ---------------------------------------------------------
    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                if self.zk_ready():
                    self._pass()
                    if first:
                        self.component.state = "running"
                        self.zk.update_component(self.component)
                        self.ready.set()
                        first = False
            except Exception:
                self.log.exception("Error in the main loop")
            self._stop.wait(self.loop_interval)

    def _pass(self) -> None:
        self._check_reload()
        self.min_ready.run_once()

    def _check_reload(self) -> None:
        try:
            mtimes = config_mtimes(self.config_path, self.secure_path)
        except OSError:
            return
        if mtimes == self._mtimes:
            return
        self._mtimes = mtimes
        try:
            config = load_config(self.config_path, self.secure_path)
        except ConfigError as e:
            self.log.error("Config reload failed; keeping the old config:\n"
                           "%s", e)
            return
        except Exception:
            self.log.exception("Config reload failed; keeping the old config")
            return
        self.log.info("Reloaded config %s", self.config_path)
        if config.zookeeper_servers != self.config.zookeeper_servers:
            # Applied to the existing session: kazoo reconnects to the new
            # ensemble on its next connection attempt (config.md §9).
            try:
                self.client.kazoo.set_hosts(
                    build_hosts(config.zookeeper_servers))
            except Exception:
                self.log.exception("Could not apply new zookeeper-servers")
        self.config = config
        self._reconcile_providers()

    # -- providers and pools ---------------------------------------------------
    def _reconcile_providers(self) -> None:
        with self._lock:
            wanted = self.config.providers
            for name in list(self._managers):
                manager = self._managers[name]
                if wanted.get(name) != manager.provider:
                    self._stop_provider(name)
            for name, provider in wanted.items():
                if name not in self._managers:
                    self._start_provider(provider)

    def _stop_provider(self, name: str) -> None:
        self.log.info("Stopping provider %s", name)
        for key in [k for k, w in self._workers.items()
                    if w.provider.name == name]:
            worker = self._workers.pop(key)
            worker.stop()
            worker.join()
        manager = self._managers.pop(name)
        manager.stop()
        self.rate_budget.leave(name)

    def _inherits_nodes(self, manager: ProviderManager) -> bool:
        """True (logged) when ``manager`` would take over nodes another
        driver left under its name since this process last ran it.

        Its deletes would not reach their instances (an OpenStack delete of
        an EC2 instance id finds nothing), so their records would go while
        the instances kept running.  The provider is then left out until
        those nodes are gone or it gets a name of its own; they stay, as
        nodes of a removed provider do.
        """
        name = manager.provider.name
        previous = self._last_run.get(name)
        if previous is None or \
                previous.provider.driver == manager.provider.driver:
            return False
        left = [n.id for n in self.zk.iter_nodes(
            cached=False, want=lambda n: n.provider == name
            and previous.owns(n) and manager.owns(n))]
        if not left:
            return False
        self.log.error(
            "Provider %s not started: its driver changed from %s to %s "
            "while %d node(s) of the %s provider exist (%s); they are kept "
            "until a %s provider named %s returns -- give the %s provider "
            "another name", name, previous.provider.driver,
            manager.provider.driver, len(left), previous.provider.driver,
            ", ".join(sorted(left)[:5]), previous.provider.driver, name,
            manager.provider.driver)
        return True

    def _start_provider(self, provider) -> None:
        try:
            cls = adapter_class(provider.driver)
            adapter = cls(provider)
            adapter.installation = self.installation
            manager = ProviderManager(provider, adapter, self.zk, self.stats,
                                      self.keyscan_pool,
                                      on_change=self._zk_changed,
                                      zk_ready=self.zk_ready,
                                      tracer=self.tracer)
            if self._inherits_nodes(manager):
                return
            # Our share of the provider's rate is set before its first call.
            self.rate_budget.join(provider.name, adapter.machinery().limiters)
            manager.start()
        except Exception:
            self.log.exception("Provider %s failed to start; leaving it out",
                               provider.name)
            self.rate_budget.leave(provider.name)
            return
        self._managers[provider.name] = manager
        self._last_run[provider.name] = manager
        for pool in provider.pools.values():
            worker = PoolWorker(self, provider, pool, manager)
            self._workers[f"{provider.name}-{pool.name}"] = worker
            worker.start()
        self.log.info("Started provider %s (%s) with pools %s",
                      provider.name, provider.driver, list(provider.pools))

