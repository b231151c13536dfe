"""``nodepool-launcher``: the long-running launcher daemon (cli.md §2).

Signals: SIGINT and SIGUSR1 stop gracefully (workers stop and unregister,
exit 0); SIGTERM closes the ZooKeeper session (so our ephemeral znodes and
locks vanish at once) and exits 0 immediately — in-flight work is
recovered by the cleanup rules; SIGUSR2 logs a stack dump of every thread
and an object census.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from nodepool.cmd.common import (
    LoggingConfigError, add_common_options, setup_logging, stack_dump)

DEFAULT_CONFIG = "/etc/nodepool/nodepool.yaml"
DEFAULT_PIDFILE = "/var/run/nodepool/nodepool.pid"
DEFAULT_LOGFILE = "/var/log/nodepool/nodepool.log"


EPILOG = f"""\
Without -f or -d the launcher detaches, writes the pid file and logs to
{DEFAULT_LOGFILE} (unless -l is given).
Signals: SIGINT and SIGUSR1 stop gracefully (requests in hand are released);
SIGTERM closes the ZooKeeper session and exits at once; SIGUSR2 writes a
stack dump of every thread and a census of live objects to the log.
Metrics go to statsd when STATSD_HOST or STATSD_PORT is set; traces go
to OpenTelemetry when OTEL_TRACES_EXPORTER is otlp or console.
Exit status: 0 after a stop signal; 1 when the config is invalid (every
problem printed on stderr), the -l logging config or an OTEL_* variable
is unusable (one line) or ZooKeeper is unreachable.
"""


#: seconds SIGTERM gives the ZooKeeper session to close before exiting
TERM_GRACE = 5.0


def exit_now(client, grace: float = TERM_GRACE, exit=os._exit) -> None:
    """SIGTERM: close the ZooKeeper session (so our ephemeral znodes and
    locks vanish at once) and exit 0 -- after ``grace`` seconds at the
    latest.  kazoo's close waits for its connection thread, which a
    server that went away meanwhile (or a flood of calls failing with the
    connection) can hold for minutes: a launcher told to stop then kept
    a core busy.  A session not closed in time expires on the server."""
    log = logging.getLogger("nodepool.launcher")

    def deadline():
        if not done.wait(grace):
            log.warning("ZooKeeper session not closed after %.0f s; "
                        "exiting anyway (it expires on the server)", grace)
            exit(0)
    done = threading.Event()
    threading.Thread(target=deadline, name="exit-deadline",
                     daemon=True).start()
    try:
        if client is not None:
            client.disconnect()
    except Exception as exc:
        log.warning("Closing the ZooKeeper session failed: %r", exc)
    finally:
        done.set()
        exit(0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="nodepool-launcher",
        description="Serve node requests from ZooKeeper by launching nodes.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(p, DEFAULT_CONFIG)
    p.add_argument("-p", dest="pidfile", metavar="PIDFILE",
                   default=DEFAULT_PIDFILE,
                   help="pid file when daemonised (default: %(default)s)")
    p.add_argument("-d", dest="debug", action="store_true",
                   help="stay in the foreground, DEBUG logging to stdout")
    p.add_argument("-f", dest="foreground", action="store_true",
                   help="stay in the foreground, INFO logging to stdout")
    p.add_argument("--no-webapp", action="store_true",
                   help="do not start the web app (webapp.port, /ready)")
    return p.parse_args(argv)


def _daemonize(pidfile: str) -> None:
    if os.path.exists(pidfile):
        try:
            with open(pidfile) as f:
                os.kill(int(f.read().strip()), 0)
        except (OSError, ValueError):
            os.unlink(pidfile)     # stale: the process is gone
        else:
            sys.exit(f"nodepool-launcher: already running (pid file "
                     f"{pidfile})")
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.makedirs(os.path.dirname(pidfile) or ".", exist_ok=True)
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")


# The launcher's threads mostly wait on ZooKeeper replies; a reply is only
# handled once its thread gets the GIL back.  With the default 5 ms switch
# interval a busy thread (a pool pass) delays every reply by up to 5 ms,
# which serialises into seconds under load; 1 ms keeps round trips short.
GIL_SWITCH_INTERVAL = 0.001


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    foreground = args.debug or args.foreground
    level = logging.DEBUG if args.debug else logging.INFO
    # Logging is set up before detaching, so a bad -l file is reported on
    # this terminal (a daemon's stderr is /dev/null); open log files
    # survive the fork.
    try:
        if not foreground:
            logfile = None if args.logconfig else DEFAULT_LOGFILE
            if logfile:
                os.makedirs(os.path.dirname(logfile), exist_ok=True)
            setup_logging(args.logconfig, level, filename=logfile)
        else:
            setup_logging(args.logconfig, level)
    except (LoggingConfigError, OSError) as e:
        print(f"nodepool-launcher: {e}", file=sys.stderr)
        return 1
    if not foreground:
        _daemonize(args.pidfile)
    log = logging.getLogger("nodepool.launcher")

    from nodepool.config import ConfigError
    from nodepool.launcher.launcher import Launcher
    from nodepool.launcher.tracing import TracingError
    from nodepool.zk.errors import ZooKeeperError

    try:
        launcher = Launcher(args.config, args.secure)
    except TracingError as e:
        print(f"nodepool-launcher: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def graceful(signum, frame):
        log.info("Received signal %s, stopping", signum)
        stop.set()

    def terminate(signum, frame):
        log.info("Received SIGTERM, exiting now")
        exit_now(launcher.client)

    signal.signal(signal.SIGINT, graceful)
    signal.signal(signal.SIGUSR1, graceful)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGUSR2,
                  lambda s, f: log.warning("Stack dump:\n%s", stack_dump()))
    try:
        launcher.start()
    except ConfigError as e:
        for line in e.errors:
            print(line, file=sys.stderr)
        return 1
    except (ZooKeeperError, RuntimeError, OSError) as e:
        print(f"nodepool-launcher: {e}", file=sys.stderr)
        return 1
    webapp = None
    if not args.no_webapp:
        webapp = _start_webapp(launcher, log)
    while not stop.wait(1.0):
        pass
    if webapp is not None:
        webapp.stop()
    launcher.stop()
    log.info("Stopped")
    return 0


def _start_webapp(launcher, log):
    try:
        from nodepool.web import WebApp
    except ImportError:
        return None
    try:
        app = WebApp(launcher)
        app.start()
        return app
    except OSError as e:
        log.error("Could not start the web app: %s", e)
        return None


if __name__ == "__main__":
    sys.exit(main())
