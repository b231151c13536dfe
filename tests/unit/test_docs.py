"""The operator documentation (doc/): it builds, and it covers what exists.

The build runs Sphinx with warnings as errors into a temporary directory, so
a broken reference, a malformed table or a page missing from the toctree
fails CI.  The coverage tests tie the pages to the code they describe: every
key of every driver schema (and the top-level schema) must be named in the
configuration reference, every CLI command and option in the operations
page, every thread the launcher's module docstring lists in the
architecture page -- so adding a key or a thread without documenting it
fails here.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from typing import Any, Iterator

import pytest
import voluptuous as vol

from nodepool.config import registry
from nodepool.config.toplevel import TOP_LEVEL
from nodepool.config.validators import Choice, ListOf, StrOr, Struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "doc", "source")

DRIVER_PAGES = {"aws": "aws.rst", "openstack": "openstack.rst",
                "azure": "azure.rst", "static": "static.rst"}


def page(name: str) -> str:
    with open(os.path.join(SOURCE, name), encoding="utf-8") as f:
        return f.read()


def literals(text: str) -> set[str]:
    """Every ``inline literal`` of a reST text (line breaks folded), and
    every word inside one (``{cert, key, ca}`` names three keys)."""
    found = set(re.findall(r"``([^`]+)``", text.replace("\n", " ")))
    words = {w for lit in found for w in re.findall(r"[\w][\w.-]*", lit)}
    return found | words


def schema_keys(schema: Any) -> Iterator[str]:
    """Every mapping key named in a (nested) config schema, and every
    value a ``Choice`` allows."""
    if isinstance(schema, Struct):
        yield from schema_keys(schema.keys)
    elif isinstance(schema, dict):
        for key, value in schema.items():
            name = key.schema if isinstance(key, vol.Marker) else key
            if isinstance(name, str):
                yield name
            yield from schema_keys(value)
    elif isinstance(schema, ListOf):
        yield from schema_keys(schema.item)
    elif isinstance(schema, vol.Schema):
        yield from schema_keys(schema.schema)
    elif isinstance(schema, StrOr):
        yield from schema_keys(schema.struct)
    elif isinstance(schema, vol.Any):
        for validator in schema.validators:
            yield from schema_keys(validator)
    elif isinstance(schema, Choice):
        yield from (str(v) for v in schema.values if v is not None)


def test_sphinx_build_has_no_warnings(tmp_path):
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q",
         "-b", "html", "-d", str(tmp_path / "doctrees"), SOURCE, str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == ""
    for name in ("index", "quickstart", "architecture", "configuration",
                 *(p[:-4] for p in DRIVER_PAGES.values()), "operations",
                 "migrating", "installation"):
        assert (out / f"{name}.html").is_file(), name


def test_schema_walker_sees_nested_keys():
    # Guards the coverage test below against a walker that finds nothing.
    keys = set(schema_keys(registry.get_driver("aws").schema))
    assert {"region-name", "key-name", "allocation-strategy",
            "lowest-price", "bucket-name", "arn"} <= keys


@pytest.mark.parametrize("driver", sorted(DRIVER_PAGES))
def test_every_driver_key_is_documented(driver):
    documented = literals(page(DRIVER_PAGES[driver])
                          + page("configuration.rst"))
    keys = set(schema_keys(registry.get_driver(driver).schema))
    missing = sorted(keys - documented)
    assert not missing, f"{DRIVER_PAGES[driver]} lacks {missing}"


def test_every_top_level_key_is_documented():
    documented = literals(page("configuration.rst"))
    missing = sorted(set(schema_keys(TOP_LEVEL)) - documented)
    assert not missing, f"configuration.rst lacks {missing}"


def test_every_registered_driver_has_a_page():
    production = set(registry.driver_names()) - {"fake"}
    assert production <= set(DRIVER_PAGES)


def _parser_names(parser: argparse.ArgumentParser) -> Iterator[str]:
    """Option strings and subcommand names of a parser, recursively."""
    for action in parser._actions:
        yield from (s for s in action.option_strings
                    if s not in ("-h", "--help"))
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name
                yield from _parser_names(sub)


def _launcher_options(capsys) -> set[str]:
    from nodepool.cmd import launcher
    with pytest.raises(SystemExit):
        launcher.parse_args(["--help"])
    usage = capsys.readouterr().out.split("\n\n", 1)[0]
    return set(re.findall(r"\[(--?[a-z][\w-]*)", usage)) - {"-h", "--help"}


def test_every_cli_command_and_option_is_documented(capsys):
    from nodepool.cmd import nodepoolcmd
    text = page("operations.rst")
    names = set(_parser_names(nodepoolcmd.build_parser()))
    names |= _launcher_options(capsys)
    assert {"config-validate", "--detail", "--no-webapp", "-p"} <= names
    missing = sorted(n for n in names
                     if not re.search(rf"(``|\[| ){re.escape(n)}\b", text))
    assert not missing, f"operations.rst lacks {missing}"


METRICS = [
    "nodepool.launch.<result>",
    "nodepool.launch.provider.<provider>.<result>",
    "nodepool.launch.provider.<provider>.<az>.<result>",
    "nodepool.launch.requestor.<requestor>.<result>",
    "nodepool.nodes.<state>",
    "nodepool.provider.<provider>.nodes.<state>",
    "nodepool.label.<label>.nodes.<state>",
    "nodepool.provider.<provider>.pool.<pool>.addressable_requests",
    "nodepool.provider.<provider>.max_servers",
    "nodepool.tenant_limits.<tenant>.<limit>",
    "nodepool.provider.<provider>.leaked.<type>",
]
RESULTS = ["ready", "error.zksession", "error.quota", "error.capacity",
           "error.keyscan", "error.servercreatetimeout",
           "error.serverdeletetimeout", "error.imagetimeout", "error.status",
           "error.network", "error.ssh", "error.ipadd", "error.nodepool",
           "error.unknown"]
LEAK_TYPES = ["instances", "volumes", "amis", "snapshots", "objects",
              "hosts", "nics", "pips", "disks", "images", "ports",
              "floatingips", "nodes"]


def test_every_metric_is_documented():
    documented = literals(page("operations.rst"))
    missing = [m for m in METRICS + RESULTS + LEAK_TYPES
               if m not in documented]
    assert not missing, f"operations.rst lacks {missing}"


def test_every_node_state_is_documented():
    from nodepool.zk import NodeState
    documented = literals(page("operations.rst"))
    missing = sorted(NodeState.ALL - documented)
    assert not missing, f"operations.rst lacks {missing}"


def test_every_launcher_thread_is_in_the_architecture_page():
    from nodepool.launcher import launcher
    doc = launcher.__doc__ or ""
    threads = doc.split("Threads", 1)[1].split("Failure story", 1)[0]
    names = literals(threads)
    assert len(names) >= 6, names
    missing = sorted(names - literals(page("architecture.rst")))
    assert not missing, f"architecture.rst lacks {missing}"


def test_readme_commands_are_explained_in_the_quick_start():
    with open(os.path.join(ROOT, "README.rst"), encoding="utf-8") as f:
        readme = f.read()
    commands = re.findall(r"^    (bash tools/\S+)", readme, re.M)
    assert len(commands) == 2, commands
    quickstart = page("quickstart.rst")
    for command in commands:
        assert command in quickstart
