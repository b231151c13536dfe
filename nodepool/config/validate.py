"""Validation pipeline shared by the launcher and ``config-validate``.

One pass collects every problem (config.md §8): file problems, secure-file
problems (prefixed with the secure file's name), the top-level schema, each
provider against its driver's schema, unique names (``names``), the
cross-reference and load checks, and the loader-only key warnings.  Reference checks run on the raw data even
where the schema failed, so a single run shows the whole picture.  Only a
config without errors is built into a ``Config``.

Public entry points:

- ``validate_config(path, secure_path, env)`` -> ``ValidationResult``
  (``errors`` are what ``config-validate`` prints on stderr).
- ``load_config(path, secure_path, env)`` -> ``Config`` or ``ConfigError``.
- ``config_from_dict(data, secure)`` -> ``Config`` or ``ConfigError``.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable, Iterator, Mapping

from nodepool.config.build import build_config
from nodepool.config.diskimages import check_diskimages
from nodepool.config.drivers.common import entries, text
from nodepool.config.driverschema import CheckContext
from nodepool.config.errors import (
    LOADER_ONLY, ConfigError, Issue, Path, ValidationResult, render)
from nodepool.config.loader import FileProblem, read_yaml
from nodepool.config.model import Config
from nodepool.config.names import check_unique_names
from nodepool.config.registry import driver_names, get_driver
from nodepool.config.toplevel import (
    SECURE_KEYS, TOP_LEVEL, TOP_LEVEL_LOADER_ONLY)
from nodepool.config.validators import run

__all__ = ["config_from_dict", "load_config", "validate_config",
           "validate_data"]

Sleep = Callable[[float], None]


def _walk(value: Any, pattern: tuple[str, ...], path: Path
          ) -> Iterator[Path]:
    """Paths in ``value`` matching ``pattern`` ("*" = every list entry)."""
    if not pattern:
        yield path
        return
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from _walk(item, rest, path + (index,))
    elif isinstance(value, dict) and head in value:
        yield from _walk(value[head], rest, path + (head,))


def _loader_only(value: Any, patterns, base: Path,
                 notes: Mapping[str, str]) -> list[Issue]:
    warnings = []
    for pattern in patterns:
        note = notes.get(pattern[-1])
        message = f"{note}; {LOADER_ONLY}" if note else LOADER_ONLY
        warnings += [Issue(path, message)
                     for path in _walk(value, pattern, base)]
    return warnings


def _check_context(data: Mapping[str, Any]) -> CheckContext:
    labels = None
    if isinstance(data.get("labels", []), list):
        labels = frozenset({text(label.get("name")) for _, label in
                            entries(data.get("labels"))} - {None})
    images = [image for _, image in entries(data.get("diskimages"))
              if text(image.get("name")) is not None]
    return CheckContext(
        labels=labels,
        diskimages=frozenset(image["name"] for image in images),
        abstract_diskimages=frozenset(
            image["name"] for image in images
            if image.get("abstract") is True))


def _providers(data: Mapping[str, Any], ctx: CheckContext
               ) -> tuple[list[Issue], list[Issue]]:
    errors: list[Issue] = []
    warnings: list[Issue] = []
    for index, raw in entries(data.get("providers")):
        path: Path = ("providers", index)
        name = raw.get("driver", "openstack")
        if not isinstance(name, str):
            continue  # reported by the top-level schema below
        driver = get_driver(name)
        if driver is None:
            errors.append(Issue(path + ("driver",), (
                f"driver '{name}' is not supported (expected one of: "
                f"{', '.join(driver_names())})")))
            continue
        errors += run(driver.schema, raw, path)
        errors += driver.check(raw, path, ctx)
        warnings += _loader_only(raw, driver.loader_only, path,
                                 driver.loader_only_notes)
    return errors, warnings


def _provider_types(data: Mapping[str, Any]) -> list[Issue]:
    """Non-mapping providers and non-string drivers (schema wording)."""
    errors = []
    providers = data.get("providers")
    if isinstance(providers, list):
        for index, raw in enumerate(providers):
            if not isinstance(raw, dict):
                continue  # "expected dict" comes from the top-level schema
            if "driver" in raw and not isinstance(raw["driver"], str):
                errors.append(Issue(("providers", index, "driver"),
                                    "expected str"))
    return errors


def _secure(secure: Any, label: str, data: dict
            ) -> tuple[list[Issue], dict, dict[str, dict]]:
    """Secure-file errors, main-file overrides, and env-vars by diskimage."""
    if secure is None:
        return [], {}, {}
    if not isinstance(secure, dict):
        return [Issue((), "expected a dictionary", prefix=label)], {}, {}
    errors: list[Issue] = []
    overrides: dict[str, Any] = {}
    for key, validator in SECURE_KEYS.items():
        if secure.get(key) is None:
            continue
        problems = run(validator, secure[key], (key,))
        errors += [Issue(p.path, p.message, prefix=label) for p in problems]
        if not problems:
            overrides[key] = secure[key]
    servers = overrides.pop("zookeeper-servers", None)
    if servers:  # an empty list does not replace the main file's
        overrides["zookeeper-servers"] = servers
    env_vars: dict[str, dict] = {}
    usable = {text(image.get("name")) for _, image in entries(data.get(
        "diskimages")) if image.get("abstract") is not True}
    for index, entry in enumerate(overrides.pop("diskimages", [])):
        if entry["name"] not in usable:
            errors.append(Issue(
                ("diskimages", index, "name"),
                f"diskimage '{entry['name']}' is not a non-abstract "
                "top-level diskimage of the main config", prefix=label))
            continue
        env_vars.setdefault(entry["name"], {}).update(entry["env-vars"])
    return errors, overrides, env_vars


def validate_data(data: Any, secure: Any = None, *,
                  main_label: str = "<config>",
                  secure_label: str = "<secure>") -> ValidationResult:
    """Validate already-parsed documents (the heart of every entry point)."""
    if not isinstance(data, dict):
        problem = "file is empty" if data is None else "expected a dictionary"
        return ValidationResult(errors=render(
            [Issue((), problem, prefix=main_label)]))
    data = copy.deepcopy(data)
    errors, overrides, secure_env = _secure(copy.deepcopy(secure),
                                            secure_label, data)
    data.update(overrides)
    errors += run(TOP_LEVEL, data)
    errors += _provider_types(data)
    errors += check_diskimages(data.get("diskimages"))
    errors += check_unique_names(data)
    provider_errors, warnings = _providers(data, _check_context(data))
    errors += provider_errors
    warnings += _loader_only(data, TOP_LEVEL_LOADER_ONLY, (), {})
    result = ValidationResult(errors=render(errors),
                              warnings=render(warnings))
    if not result.errors:
        result.config = build_config(data, secure_env,
                                     tuple(result.warnings))
    return result


def validate_config(path: str, secure_path: str | None = None,
                    env: Mapping[str, str] | None = None, *,
                    sleep: Sleep = time.sleep) -> ValidationResult:
    """Read and validate the files; never raises for a bad config."""
    problems: list[str] = []
    documents = []
    for name in (path, secure_path):
        try:
            documents.append(read_yaml(name, env, sleep) if name else None)
        except FileProblem as exc:
            problems.append(exc.issue.render())
    if problems:
        return ValidationResult(errors=problems)
    data, secure = documents
    return validate_data(data, secure, main_label=path,
                         secure_label=secure_path or "<secure>")


def load_config(path: str, secure_path: str | None = None,
                env: Mapping[str, str] | None = None, *,
                sleep: Sleep = time.sleep) -> Config:
    """The validated config; ``ConfigError`` lists every problem."""
    return _config_or_raise(validate_config(path, secure_path, env,
                                            sleep=sleep))


def config_from_dict(data: dict, secure: dict | None = None) -> Config:
    """Validate and build in-memory documents (tests, tools)."""
    return _config_or_raise(validate_data(data, secure))


def _config_or_raise(result: ValidationResult) -> Config:
    if result.errors or result.config is None:
        raise ConfigError(result.errors, result.warnings)
    return result.config
