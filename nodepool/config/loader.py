"""Reading a config file from disk (config.md §1).

Failure story:

- The file is missing: an editor that saves by replacing the file leaves a
  short window in which it does not exist, and the launcher may reload
  exactly then.  ``read_yaml`` retries 3 times, 0.5 s apart (the sleep is a
  parameter so tests never wait), then reports ``<file>: file not found``.
- The file is unreadable or not UTF-8: one error naming the file.
- The YAML is malformed: one error ``<file>:<line>:<column>: <problem>``
  (1-based).  PyYAML's snippet of the offending text is deliberately left
  out, as it could contain a secret.
- A mapping repeats a key (PyYAML would keep the last value silently):
  ``<file>:<line>:<column>: duplicate key 'rate' (first at line 9, column
  5)``.  Keys brought in by a ``<<`` merge may be overridden, as YAML says.
- Nesting deeper than ``MAX_DEPTH`` levels (no config needs more than a
  dozen; thousands would exhaust Python's recursion limit): one error at
  the first level too deep.  A value PyYAML can not construct (a
  timestamp like ``2026-13-45``) is one error at its position.  No parse
  problem ends in a traceback, and every one names the file.

``%(NODEPOOL_NAME)`` placeholders are replaced by the environment variable
of that name before parsing; other placeholders, and those naming unset
variables, stay verbatim (as upstream: a verbatim placeholder inside a
quoted or longer scalar is just text).  Where a verbatim placeholder makes
the YAML invalid -- a plain scalar can not start with ``%`` -- the error
names the unset variable instead of PyYAML's "found character '%'":
``<file>:<line>:<column>: environment variable NODEPOOL_X is not set ...``.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Callable, Mapping

import yaml

from nodepool.config.errors import Issue

__all__ = ["MAX_DEPTH", "MISSING_FILE_RETRIES", "RETRY_DELAY",
           "config_mtimes", "read_yaml", "substitute_env"]

MISSING_FILE_RETRIES = 3
RETRY_DELAY = 0.5
MAX_DEPTH = 100
_MERGE_TAG = "tag:yaml.org,2002:merge"

_PLACEHOLDER = re.compile(r"%\((NODEPOOL_[^()]*)\)")


class FileProblem(Exception):
    """A file could not be turned into data; ``issue`` says why."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.render())
        self.issue = issue


class _Positioned(yaml.MarkedYAMLError):
    """A problem of ours at a position in the text (``problem_mark``)."""

    def __init__(self, problem: str, mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys and deep nesting."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Positioned(f"nesting deeper than {MAX_DEPTH} levels",
                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception:
            # e.g. ValueError for a timestamp with month 13; the message
            # is left out as it may quote the value.
            kind = node.tag.rsplit(":", 1)[-1]
            raise _Positioned(f"invalid {kind} value",
                              node.start_mark) from None

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self._check_duplicates(node)
        return super().construct_mapping(node, deep=deep)

    def _check_duplicates(self, node: yaml.MappingNode) -> None:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or \
                    not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:
                continue  # unhashable: PyYAML reports it itself
            if first is not key_node.start_mark:
                raise _Positioned(
                    f"duplicate key '{key_node.value}' (first at line "
                    f"{first.line + 1}, column {first.column + 1})",
                    key_node.start_mark)


def substitute_env(text: str, env: Mapping[str, str]) -> str:
    """Replace ``%(NODEPOOL_*)`` placeholders that name set variables."""
    def replace(match: re.Match) -> str:
        return env.get(match.group(1), match.group(0))
    return _PLACEHOLDER.sub(replace, text)


def _read_text(path: str, sleep: Callable[[float], None]) -> str:
    retries = MISSING_FILE_RETRIES
    while True:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            break
        except FileNotFoundError:
            if retries == 0:
                raise FileProblem(Issue((), "file not found", prefix=path))
            retries -= 1
            sleep(RETRY_DELAY)
        except OSError as exc:
            raise FileProblem(Issue(
                (), f"can not read file: {exc.strerror}", prefix=path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileProblem(Issue((), "file is not valid UTF-8", prefix=path))


def _unset_placeholder(path: str, text: str, exc: yaml.YAMLError,
                       env: Mapping[str, str]) -> Issue | None:
    """The issue to report when the error lies on a verbatim placeholder.

    Its position is the placeholder's ``%`` (PyYAML may point one character
    further, e.g. at a line start where ``%`` begins a directive).
    """
    for mark in (getattr(exc, "problem_mark", None),
                 getattr(exc, "context_mark", None)):
        index = getattr(mark, "index", None)
        if index is None:
            continue
        for match in _PLACEHOLDER.finditer(text):
            if match.start() > index:
                break
            name = match.group(1)
            if index < match.end() and name not in env:
                start = match.start()
                line = text.count("\n", 0, start) + 1
                column = start - (text.rfind("\n", 0, start) + 1) + 1
                return Issue((), f"environment variable {name} is not set, "
                                 f"so %({name}) is left as written, which "
                                 f"is not valid YAML here",
                             prefix=f"{path}:{line}:{column}")
    return None


def _at(path: str, mark) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}"


def _syntax_issue(path: str, exc: yaml.YAMLError) -> Issue:
    if isinstance(exc, _Positioned):
        return Issue((), exc.problem, prefix=_at(path, exc.problem_mark))
    mark = getattr(exc, "problem_mark", None) or getattr(
        exc, "context_mark", None)
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    problem = ": ".join(p for p in parts if p) or "invalid YAML"
    if mark is None:
        return Issue((), f"YAML syntax error: {problem}", prefix=path)
    # Issue.render puts the prefix before the path; here the "path" is the
    # position in the file, the way compilers report it.
    return Issue((), f"YAML syntax error: {problem}",
                 prefix=_at(path, mark))


def read_yaml(path: str, env: Mapping[str, str] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> Any:
    """Parse ``path`` after environment substitution; raise FileProblem."""
    text = _read_text(path, sleep)
    env = os.environ if env is None else env
    text = substitute_env(text, env)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except _Positioned as exc:
        raise FileProblem(_syntax_issue(path, exc)) from None
    except yaml.YAMLError as exc:
        unset = _unset_placeholder(path, text, exc, env)
        if unset is not None:
            raise FileProblem(unset) from None
        raise FileProblem(_syntax_issue(path, exc)) from None
    except RecursionError:
        # MAX_DEPTH keeps the composer well inside the limit; this is the
        # last guard (a deep chain of aliases, say).
        raise FileProblem(Issue((), "YAML nesting too deep to read",
                                prefix=path)) from None


def config_mtimes(path: str, secure_path: str | None = None
                  ) -> tuple[int | None, int | None]:
    """Nanosecond mtimes of the config and secure file (None if absent).

    The launcher reloads when this tuple differs from the one it saw when it
    last loaded (config.md §9).
    """
    def mtime(name: str | None) -> int | None:
        if not name:
            return None
        try:
            return os.stat(name).st_mtime_ns
        except OSError:
            return None
    return mtime(path), mtime(secure_path)
