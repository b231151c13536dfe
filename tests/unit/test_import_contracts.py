"""The import contracts of ``pyproject.toml`` are there, and they hold.

``tools/run-tests`` runs ``lint-imports`` before the suite; this test adds
what that run cannot see: that the contracts the architecture names are
still configured (a run with a contract deleted, or with TYPE_CHECKING
imports excluded, would pass just as quietly), and it runs the check for
anyone who runs the unit tests alone.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]


def test_the_architecture_contracts_are_configured():
    config = _config()
    assert config["root_package"] == "nodepool"
    # A module written against another's type depends on it.
    assert config.get("exclude_type_checking_imports", False) is False
    contracts = {c["id"]: c for c in config["contracts"]}
    assert contracts["layers"]["type"] == "layers"
    assert contracts["layers"]["layers"] == [
        "nodepool.cmd", "nodepool.web", "nodepool.launcher",
        "nodepool.driver", "nodepool.config | nodepool.zk"]
    independent = contracts["drivers-independent"]
    assert independent["type"] == "independence"
    assert {"nodepool.driver.aws", "nodepool.driver.azure",
            "nodepool.driver.openstack", "nodepool.driver.static"} <= \
        set(independent["modules"])
    schemas = contracts["driver-schemas-independent"]
    assert schemas["type"] == "independence"
    assert len(schemas["modules"]) >= 4
    cycles = contracts["no-cycles"]
    assert cycles["type"] == "acyclic_siblings"
    assert cycles["ancestors"] == ["nodepool"]


def test_the_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-logo", "--no-cache", "pyproject.toml"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
