"""``nodepool``: the operator CLI (cli.md §1).

Every command except ``config-validate`` loads the config, connects to
ZooKeeper (TLS when ``zookeeper-tls`` is set), reads uncached data and
disconnects.  ``hold`` and ``delete`` change a node only while holding its
lock, waiting at most 5 s; writes preserve keys we do not know.

Failure story (exit status): success 0; no command → help, 1; bad
arguments → usage on stderr, 2 (argparse); everything else that goes wrong
-- invalid config, ZooKeeper unreachable (reported within the session
timeout), unknown node id, node locked by someone else, provider not in the
local config for ``delete --now``, ``erase`` of a provider still in service
-- prints ONE line on stderr and exits 1.  Tracebacks only with
``--debug``.

Listings (``list``, ``request-list``, ``info``) print the records they can
read and, on stderr, one line per znode they skipped because it cannot be
read (``nodepool: skipped unreadable znode <path>: <field and problem>``);
those do not change the exit status.

``erase`` refuses (before asking, and again after the answer) while a
registered pool component names the provider (a running launcher would
take the erased nodes' instances for leaks and delete them) or while any
of its nodes is locked or ``in-use`` (Zuul is using it).  ``--force`` only
skips the question.  What it cannot close: a launcher registering, or
Zuul locking a node, in the moment between the check and the removal.
Text that comes from ZooKeeper is printed with control characters escaped
(``nodepool.escaping``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback
from typing import Any, Callable, TextIO

from kazoo.exceptions import KazooException

from nodepool import tables
from nodepool.cmd.common import (
    LoggingConfigError, add_common_options, setup_logging)
from nodepool.config import ConfigError, load_config, validate_config
from nodepool.escaping import escape_controls
from nodepool.zk import (LockedObjectGone, LockError, Node, NodeState,
                         ZooKeeper, ZooKeeperClient)

DEFAULT_CONFIG = "/etc/nodepool/nodepool.yaml"
# cli.md §1.2: the CLI waits at most this long for a node lock.
LOCK_TIMEOUT = 5.0
# How many pools or nodes an erase refusal names before "and N more".
NAMED_AT_MOST = 5

log = logging.getLogger("nodepool.cmd")


class CommandError(Exception):
    """A failure reported as one line on stderr, exit status 1."""


EPILOG = """\
Every command except config-validate reads the config file and connects to
ZooKeeper (over TLS when zookeeper-tls is set).  Exit status: 0 on success;
1 when no command is given, a node id is unknown, a node lock is not
obtained within 5 s, the config is invalid or ZooKeeper is unreachable (one
line on stderr); 2 for unknown commands and bad arguments.  Run
'nodepool <command> --help' for a command's options.
"""

# name -> (one line for the command list, description for its own --help)
COMMANDS = {
    "list": ("list nodes",
             "One row per node: ID, Provider, Label, Server ID, Public IPv4, "
             "IPv6, State, Age (DD:HH:MM:SS since the last state change), "
             "Locked."),
    "request-list": ("list node requests",
                     "One row per node request: Request ID, Priority "
                     "(relative_priority), State, Requestor, Node Types, "
                     "Nodes, Declined By, Event ID; with --detail also why "
                     "each request waits."),
    "info": ("show a provider's ZooKeeper records",
             "Image uploads and nodes ZooKeeper holds for one provider; the "
             "cloud is not asked."),
    "hold": ("hold a node",
             "Put a node on hold: it is neither handed out nor deleted until "
             "an operator deletes it or the hold expires (max-hold-age).  "
             "Prints the node's row."),
    "delete": ("delete a node",
               "Mark a node 'deleting'; a launcher deletes its instance and "
               "its record.  Prints the node's row."),
    "erase": ("erase a provider's ZooKeeper records",
              "Remove every node and image-upload record of a provider from "
              "ZooKeeper, without any cloud call; for a provider that is "
              "gone.  Refuses while a running launcher serves the provider "
              "or any of its nodes is locked or in use.  Asks for "
              "confirmation unless --force is given."),
    "image-list": ("list image uploads",
                   "Image uploads recorded by builders: Build ID, Upload ID, "
                   "Provider, Image, Provider Image Name, Provider Image ID, "
                   "State, Age."),
    "config-validate": ("validate the config file",
                        "Check the config file (and the secure file) without "
                        "connecting anywhere.  Errors go to stderr as "
                        "'<path>: <message>' (exit 1); keys that upstream's "
                        "validator would reject but its launcher accepts are "
                        "printed as WARNING lines (exit 0)."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodepool", description="Inspect and manage Nodepool nodes.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, DEFAULT_CONFIG)
    parser.add_argument("--debug", action="store_true",
                        help="DEBUG logging and tracebacks on stderr")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    cmds = {name: sub.add_parser(name, help=short, description=long)
            for name, (short, long) in COMMANDS.items()}
    node_id = "node id, as shown by 'nodepool list' (e.g. 0000000042)"
    provider = "provider name, as in the config file"
    cmds["list"].add_argument("--detail", action="store_true",
                              help="add the columns Pool, Hostname, Private "
                              "IPv4, AZ, Username, Port, Launcher, Allocated "
                              "To, Hold Job, Comment, User Data, Driver Data")
    cmds["request-list"].add_argument(
        "--detail", action="store_true",
        help="add the columns Waiting For, Waiting Since, Wait Reason: why "
        "each request waits, as the launchers' pools record it")
    for name in ("list", "request-list"):
        cmds[name].add_argument("--json", action="store_true",
                                help="print the rows as a JSON list of "
                                "objects instead of a table")
    cmds["info"].add_argument("provider", help=provider)
    cmds["hold"].add_argument("id", help=node_id)
    cmds["hold"].add_argument("--reason",
                              help="comment stored on the node")
    cmds["delete"].add_argument("id", help=node_id)
    cmds["delete"].add_argument("--now", action="store_true",
                                help="delete the cloud resources and the "
                                "record from this process, before returning")
    cmds["erase"].add_argument("provider", help=provider)
    cmds["erase"].add_argument("--force", action="store_true",
                               help="do not ask for confirmation (the "
                               "refusals still apply)")
    return parser


def _setup_logging(args: argparse.Namespace) -> None:
    if args.logconfig:
        setup_logging(args.logconfig, logging.INFO)
    elif args.debug:
        setup_logging(None, logging.DEBUG, stream=sys.stderr)
    elif not logging.getLogger().handlers:
        # A quiet tool: stdout is for tables, stderr for the one error
        # line.  kazoo's reconnect chatter would otherwise reach stderr.
        logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
        logging.getLogger("kazoo").setLevel(logging.CRITICAL)


def main(argv: list[str] | None = None, *,
         clock: Callable[[], float] = time.time,
         stdin: TextIO | None = None) -> int:
    """Console script entry point; ``clock`` and ``stdin`` are for tests."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else 1
    if not args.command:
        parser.print_help()
        return 1
    try:
        _setup_logging(args)
    except LoggingConfigError as exc:
        print(f"nodepool: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(args, clock, stdin or sys.stdin)
    except CommandError as exc:
        print(str(exc), file=sys.stderr)
    except Exception as exc:  # one line, unless debugging
        if args.debug:
            traceback.print_exc()
        print(f"nodepool: {_describe(exc)}", file=sys.stderr)
    return 1


def _printable(text: str) -> str:
    """``text`` with control and other unprintable characters escaped (a
    znode name is anyone's choice)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ConfigError):
        more = len(exc.errors) - 1
        first = exc.errors[0] if exc.errors else str(exc)
        tail = f" (and {more} more; run config-validate)" if more else ""
        return f"invalid configuration: {first}{tail}"
    if isinstance(exc, KazooException):
        return f"ZooKeeper error: {exc!r}"
    return str(exc) or type(exc).__name__


def _run(args: argparse.Namespace, clock: Callable[[], float],
         stdin: TextIO) -> int:
    if args.command == "config-validate":
        return config_validate(args)
    config = load_config(args.config, args.secure)
    client = ZooKeeperClient.from_config(config)
    client.connect(timeout=config.zookeeper_timeout)
    try:
        zk = ZooKeeper(client, enable_cache=False)
        commands = Commands(args, config, zk, clock, stdin)
        return getattr(commands, args.command.replace("-", "_"))()
    finally:
        client.disconnect()


def config_validate(args: argparse.Namespace) -> int:
    result = validate_config(args.config, args.secure)
    for warning in result.warnings:
        print(f"WARNING: {warning}")
    for error in result.errors:
        print(error, file=sys.stderr)
    return 1 if result.errors else 0


class Commands:
    """One method per ZooKeeper-backed command; each returns the exit
    status."""

    def __init__(self, args: argparse.Namespace, config: Any, zk: ZooKeeper,
                 clock: Callable[[], float], stdin: TextIO) -> None:
        self.args, self.config, self.zk = args, config, zk
        self.clock, self.stdin = clock, stdin

    # -- read-only --------------------------------------------------------
    def list(self) -> int:
        unreadable: list = []
        pairs = [(node, self.zk.is_locked(node, cached=False))
                 for node in self.zk.iter_nodes(cached=False,
                                                rejects=unreadable)]
        table = tables.node_table(pairs, self.clock(), self.args.detail)
        self._emit(table, self.args.json)
        self._report_unreadable(unreadable)
        return 0

    def request_list(self) -> int:
        unreadable: list = []
        requests = self.zk.iter_requests(cached=False, rejects=unreadable)
        if self.args.detail:
            waits = self.zk.waits_by_request(cached=False, requests=requests)
            table = tables.request_table(requests, waits, self.clock())
        else:
            table = tables.request_table(requests)
        self._emit(table, self.args.json)
        self._report_unreadable(unreadable)
        return 0

    def image_list(self) -> int:
        uploads = self.zk.iter_image_uploads()
        print(tables.image_table(uploads, self.clock()).to_text())
        return 0

    def info(self) -> int:
        provider = self.args.provider
        uploads = self.zk.iter_image_uploads(provider=provider)
        unreadable: list = []
        nodes = [n for n in self.zk.iter_nodes(cached=False,
                                               rejects=unreadable)
                 if n.provider == provider]
        images, node_table = tables.info_tables(uploads, nodes)
        print(f"ZooKeeper data for provider {provider}")
        print()
        print("Image data:")
        print(images.to_text())
        print()
        print("Nodes:")
        print(node_table.to_text())
        self._report_unreadable(unreadable)
        return 0

    @staticmethod
    def _report_unreadable(entries) -> None:
        """One stderr line per znode a listing skipped (quarantined)."""
        for entry in entries:
            print(f"nodepool: skipped unreadable znode "
                  f"{_printable(entry.path)}: {_printable(entry.reason)}",
                  file=sys.stderr)

    def _emit(self, table: tables.Table, as_json: bool) -> None:
        if as_json:
            print(json.dumps(table.to_json(), indent=2))
        else:
            print(table.to_text())

    # -- changes ----------------------------------------------------------
    def hold(self) -> int:
        node = self._locked_node(self.args.id)
        try:
            node.set_state(NodeState.HOLD, now=self.clock())
            if self.args.reason:
                node.comment = self.args.reason
            self.zk.store_node(node)
        finally:
            self.zk.unlock_node(node)
        self._print_row(node)
        return 0

    def delete(self) -> int:
        node = self._locked_node(self.args.id)
        try:
            if self.args.now:
                self._delete_now(node)
            else:
                node.set_state(NodeState.DELETING, now=self.clock())
                self.zk.store_node(node)
        finally:
            self.zk.unlock_node(node)
        self._print_row(node)
        return 0

    def _delete_now(self, node: Node) -> None:
        """Delete the cloud resources here, then the znode (cli.md §1.2).

        The cloud part is ``nodepool.launcher.delete_now(config, provider,
        node)``; it must return only once the resources are gone (not-found
        counts as gone) and raise otherwise, leaving the node ``deleting``
        for the launchers to retry.
        """
        import nodepool.launcher
        provider = self.config.providers.get(node.provider)
        hook = getattr(nodepool.launcher, "delete_now", None)
        if provider is None or hook is None:
            raise CommandError(f"Provider {node.provider} for node {node.id}"
                               " not defined on this launcher")
        node.set_state(NodeState.DELETING, now=self.clock())
        self.zk.store_node(node)
        try:
            hook(self.config, provider, node)
        except Exception as exc:
            raise CommandError(f"Deleting node {node.id} failed: {exc} "
                               "(left in state deleting)") from exc
        self.zk.delete_node(node)

    def erase(self) -> int:
        provider = self.args.provider
        self._refuse_unsafe_erase(provider)
        if not self.args.force:
            print()
            print("WARNING! This action is not reversible!")
            print(f"Erase ZooKeeper data for provider {provider}? [N/y] ",
                  end="", flush=True)
            if self.stdin.readline().strip() not in ("y", "Y"):
                print("Aborting. No data erased.")
                return 0
            # the operator may have taken a while to answer
            self._refuse_unsafe_erase(provider)
        print(f"Erasing build data for {provider}...")
        self.zk.erase_provider_uploads(provider)
        print(f"Erasing node data for {provider}...")
        self.zk.erase_provider_nodes(provider)
        return 0

    def _refuse_unsafe_erase(self, provider: str) -> None:
        reasons = erase_blockers(self.zk, provider)
        if reasons:
            raise CommandError(f"Refusing to erase provider {provider}: "
                               f"{'; '.join(reasons)}.  No data erased.")

    # -- helpers ----------------------------------------------------------
    def _locked_node(self, node_id: str) -> Node:
        node = self.zk.get_node(node_id)
        if node is None:
            raise CommandError(f"Node id {node_id} not found")
        try:
            self.zk.lock_node(node, blocking=True, timeout=LOCK_TIMEOUT)
        except LockedObjectGone:
            raise CommandError(f"Node id {node_id} not found") from None
        except LockError:
            raise CommandError(
                f"Node {node_id} is locked by someone else; lock not "
                f"obtained within {LOCK_TIMEOUT:g} s") from None
        return node

    def _print_row(self, node: Node) -> None:
        locked = self.zk.is_locked(node, cached=False)
        print(tables.node_table([(node, locked)], self.clock()).to_text())


def erase_blockers(zk: ZooKeeper, provider: str) -> list[str]:
    """Why erasing ``provider`` now would harm someone (empty: it is safe):
    a registered launcher serves it, or some of its nodes are in use."""
    reasons = []
    pools = sorted(f"pool {c.name} on {c.hostname}"
                   for c in zk.iter_pool_components(cached=False)
                   if c.provider_name == provider)
    if pools:
        reasons.append(f"a running launcher serves it ({_some(pools)}) -- "
                       "stop it or remove the provider from its config "
                       "first")
    busy = [_busy(zk, node) for node in zk.iter_nodes(cached=False)
            if node.provider == provider]
    busy = [b for b in busy if b]
    if busy:
        count = (f"{len(busy)} of its nodes are" if len(busy) > 1
                 else "1 of its nodes is")
        reasons.append(f"{count} locked or in use ({_some(busy)}) -- wait "
                       "until they are released")
    return [escape_controls(reason) for reason in reasons]


def _busy(zk: ZooKeeper, node: Node) -> str | None:
    """'<id> in-use and locked', '<id> locked' ... or None when idle."""
    marks = []
    if node.state == NodeState.IN_USE:
        marks.append(NodeState.IN_USE)
    if zk.is_locked(node, cached=False):
        marks.append("locked")
    return f"{node.id} {' and '.join(marks)}" if marks else None


def _some(items: list[str]) -> str:
    shown = ", ".join(items[:NAMED_AT_MOST])
    more = len(items) - NAMED_AT_MOST
    return f"{shown} and {more} more" if more > 0 else shown
