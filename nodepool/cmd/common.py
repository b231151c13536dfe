"""Pieces shared by the ``nodepool`` and ``nodepool-launcher`` commands."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import threading
import traceback

from nodepool.version import __version__

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ContextFilter(logging.Filter):
    """Prefix messages with ``[node_request: …] [node: …] [e: …]`` context.

    Loggers pass the context through ``LoggerAdapter`` extras named
    ``request``, ``node`` and ``event``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        parts = []
        for attr, label in (("event", "e"), ("request", "node_request"),
                            ("node", "node")):
            value = getattr(record, attr, None)
            if value:
                parts.append(f"[{label}: {value}]")
        record.context = (" ".join(parts) + " ") if parts else ""
        return True


def add_common_options(parser, default_config: str) -> None:
    """The options both commands share (cli.md): --version, -l, -c, -s."""
    parser.add_argument("--version", action="version",
                        version=f"Nodepool version: {__version__}",
                        help="print the version and exit")
    parser.add_argument("-l", dest="logconfig", metavar="LOGCONFIG",
                        help="logging config (.yaml/.yml/.json dict config, "
                        "else INI)")
    parser.add_argument("-c", dest="config", metavar="CONFIG",
                        default=default_config,
                        help="config file (default: %(default)s)")
    parser.add_argument("-s", dest="secure", metavar="SECURE",
                        help="secure config file")


def setup_logging(logconfig: str | None, level: int,
                  stream=None, filename: str | None = None) -> None:
    """Configure logging from a file (dict YAML/JSON or INI) or defaults."""
    if logconfig:
        if logconfig.endswith((".yaml", ".yml", ".json")):
            import yaml
            with open(logconfig) as f:
                data = (json.load(f) if logconfig.endswith(".json")
                        else yaml.safe_load(f))
            logging.config.dictConfig(data)
        else:
            logging.config.fileConfig(logconfig,
                                      disable_existing_loggers=False)
        return
    handler: logging.Handler
    if filename:
        handler = logging.FileHandler(filename)
    else:
        handler = logging.StreamHandler(stream or sys.stdout)
    handler.addFilter(ContextFilter())
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(context)s%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kazoo.client", "botocore", "urllib3", "paramiko",
                  "azure", "keystoneauth", "openstack"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def stack_dump() -> str:
    """Every thread's stack, for SIGUSR2."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        out.append(f"Thread {ident} ({names.get(ident, '?')}):")
        out.append("".join(traceback.format_stack(frame)))
    return "\n".join(out)
