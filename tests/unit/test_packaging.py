"""The project metadata lives in setup.cfg; pyproject.toml keeps the build
system and the tools' settings (the design card's layout)."""

from __future__ import annotations

import configparser
import importlib.metadata
import os
import re
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def read(name: str) -> str:
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read_string(read("setup.cfg"))
    return cfg


def requirement_names(lines) -> set[str]:
    names = set()
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[<>=!~;\[ ]", line)[0].lower())
    return names


def test_pyproject_holds_only_the_build_system_and_tool_settings():
    pyproject = tomllib.loads(read("pyproject.toml"))
    assert "project" not in pyproject
    assert pyproject["build-system"]["build-backend"] == \
        "setuptools.build_meta"
    assert set(pyproject) <= {"build-system", "tool"}


def test_setup_cfg_declares_the_metadata():
    cfg = setup_cfg()
    assert cfg["metadata"]["name"] == "nodepool"
    assert cfg["metadata"]["version"] == "attr: nodepool.version.__version__"
    assert cfg["options"]["install_requires"].strip() == \
        "file: requirements.txt"
    assert set(cfg["options.extras_require"]) >= {"test", "docs"}
    assert "static/*" in cfg["options.package_data"]["nodepool.web"]


def test_installed_distribution_matches_setup_cfg():
    # The suite runs against the editable install tools/install.sh made.
    dist = importlib.metadata.distribution("nodepool")
    from nodepool.version import __version__
    assert dist.version == __version__
    base = [r for r in dist.requires or [] if "extra ==" not in r]
    assert requirement_names(base) == requirement_names(
        read("requirements.txt").splitlines())
    extras = {r for r in dist.requires or [] if 'extra == "test"' in r}
    assert requirement_names(extras) >= {"pytest", "pytest-xdist", "moto"}
    scripts = {e.name: e.value for e in dist.entry_points
               if e.group == "console_scripts"}
    assert scripts == {"nodepool": "nodepool.cmd.nodepoolcmd:main",
                       "nodepool-launcher": "nodepool.cmd.launcher:main"}
