"""How configuration problems are reported (config.md §8.3).

Validation never stops at the first problem: every check appends an
``Issue`` (a key path plus a message) and the caller gets them all at once,
rendered as ``<path>: <message>`` lines such as::

    providers[0].pools[1].labels[2].key-name: required key not provided

Messages name keys and names (labels, images, providers), never values, so
credentials in a config can not leak into logs or stderr.

- ``ConfigError``: raised by ``load_config``/``config_from_dict``; carries
  ``errors`` and ``warnings`` (lists of rendered lines).
- ``ValidationResult``: what ``validate_config`` returns instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Iterable, Sequence, TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from nodepool.config.model import Config

__all__ = ["ConfigError", "Issue", "ValidationResult", "format_path",
           "render"]

Path = tuple[Hashable, ...]

LOADER_ONLY = ("loader-only key: accepted and used, but upstream Nodepool's "
               "config-validate rejects it")


def format_path(path: Sequence[Hashable], root: str = "<root>") -> str:
    """``('providers', 0, 'rate')`` -> ``providers[0].rate``."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or root


@dataclass(frozen=True)
class Issue:
    """One problem at one key path; ``prefix`` names a file when needed."""
    path: Path
    message: str
    prefix: str = ""

    def render(self) -> str:
        if self.prefix and not self.path:
            return f"{self.prefix}: {self.message}"
        line = f"{format_path(self.path)}: {self.message}"
        return f"{self.prefix}: {line}" if self.prefix else line

    def sort_key(self) -> tuple:
        # Ints sort numerically and before strings so that a list's entries
        # come out in document order and the output is stable across runs.
        parts = tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p))
                      for p in self.path)
        return (self.prefix, parts, self.message)


def render(issues: Iterable[Issue]) -> list[str]:
    """Sorted, de-duplicated ``<path>: <message>`` lines."""
    seen: set[str] = set()
    lines = []
    for issue in sorted(issues, key=Issue.sort_key):
        line = issue.render()
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


class ConfigError(Exception):
    """The configuration is invalid; ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[str],
                 warnings: Sequence[str] = ()) -> None:
        self.errors = list(errors)
        self.warnings = list(warnings)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


@dataclass
class ValidationResult:
    """Errors (stderr), warnings, and the config when there were no errors."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    config: "Config | None" = None

    @property
    def ok(self) -> bool:
        return not self.errors
