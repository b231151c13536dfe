"""Pieces shared by the ``nodepool`` and ``nodepool-launcher`` commands."""

from __future__ import annotations

import collections
import gc
import json
import logging
import logging.config
import os
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


class LoggingConfigError(Exception):
    """The ``-l`` file can not be used; the message is one line naming it."""


def _one_line(exc: BaseException) -> str:
    """``exc`` and what caused it (dictConfig wraps the real problem)."""
    parts: list[str] = []
    while exc is not None and len(parts) < 3:
        if isinstance(exc, KeyError) and exc.args:
            text = f"missing {exc.args[0]!r}"   # fileConfig's sections
        else:
            text = " ".join((str(exc) or type(exc).__name__).split())
        if not any(text in part for part in parts):
            parts.append(text)
        exc = exc.__cause__ or exc.__context__
    return ": ".join(parts)


def _read_dict_config(path: str) -> dict:
    import yaml
    with open(path) as f:
        try:
            data = (json.load(f) if path.endswith(".json")
                    else yaml.safe_load(f))
        except json.JSONDecodeError as e:
            raise LoggingConfigError(
                f"logging config {path}:{e.lineno}:{e.colno}: {e.msg}"
            ) from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or "invalid YAML"
            raise LoggingConfigError(
                f"logging config {path}{where}: {problem}") from None
    if not isinstance(data, dict):
        raise LoggingConfigError(f"logging config {path}: expected a "
                                 "mapping (a logging dictConfig)")
    return data


def apply_logging_config(path: str) -> None:
    """Configure logging from ``path`` (dict YAML/JSON, else INI).

    Raises ``LoggingConfigError`` (one line naming the file) for a file
    that is missing, unreadable, not parseable or rejected by ``logging``
    (unknown handler class, a log file that can not be opened...).
    """
    try:
        if not os.path.isfile(path):
            raise LoggingConfigError(f"logging config {path}: file not "
                                     "found")
        if path.endswith((".yaml", ".yml", ".json")):
            logging.config.dictConfig(_read_dict_config(path))
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except LoggingConfigError:
        raise
    except Exception as e:  # logging raises many kinds; all are one line
        raise LoggingConfigError(
            f"logging config {path}: {_one_line(e)}") from None


def setup_logging(logconfig: str | None, level: int,
                  stream=None, filename: str | None = None) -> None:
    """Configure logging from a file (dict YAML/JSON or INI) or defaults;
    a bad file raises ``LoggingConfigError``."""
    if logconfig:
        apply_logging_config(logconfig)
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
    """Every thread's stack, then an object census, for SIGUSR2."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        out.append(f"Thread {ident} ({names.get(ident, '?')}):")
        out.append("".join(traceback.format_stack(frame)))
    out.append(object_census())
    return "\n".join(out)


def object_census(top: int = 25) -> str:
    """The most common types among the objects the garbage collector
    tracks, with their counts: two dumps some minutes apart show which
    kind of object a slowly growing process keeps."""
    counts = collections.Counter(
        f"{type(o).__module__}.{type(o).__qualname__}"
        for o in gc.get_objects())
    lines = [f"Objects tracked by the garbage collector: "
             f"{sum(counts.values())} ({len(counts)} types); the "
             f"{top} most common:"]
    lines += [f"{n:>10} {name}" for name, n in counts.most_common(top)]
    return "\n".join(lines)
