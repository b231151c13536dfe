"""``--help`` of ``nodepool``, each of its commands, and ``nodepool-launcher``.

Every command and option of the CLI specification must be listed, and every
entry of every help screen must say what it does; the options the two
programs share must be described the same way.  The screens are produced by
the real entry points (in process, and once through the installed console
scripts).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from nodepool.cmd import launcher, nodepoolcmd
from nodepool.version import __version__

COMMANDS = ["list", "request-list", "info", "hold", "delete", "erase",
            "image-list", "config-validate"]
# command -> options and positionals its own --help must show
COMMAND_ARGS = {
    "list": ["--detail", "--json"],
    "request-list": ["--json"],
    "info": ["provider"],
    "hold": ["id", "--reason"],
    "delete": ["id", "--now"],
    "erase": ["provider", "--force"],
    "image-list": [],
    "config-validate": [],
}
NODEPOOL_OPTIONS = ["-h", "--version", "-l LOGCONFIG", "-c CONFIG",
                    "-s SECURE", "--debug"]
LAUNCHER_OPTIONS = ["-h", "--version", "-l LOGCONFIG", "-p PIDFILE", "-d",
                    "-f", "-c CONFIG", "-s SECURE", "--no-webapp"]


def nodepool_help(capsys, *argv: str) -> str:
    assert nodepoolcmd.main([*argv, "--help"]) == 0
    return capsys.readouterr().out


def launcher_help(capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        launcher.parse_args(["--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def entries(text: str) -> dict[str, str]:
    """Invocation -> description for every entry of the argument sections.

    argparse prints an entry at an indent of 2 (4 for sub-commands) as
    ``-c CONFIG   text``, or the invocation alone with its text on the
    next, further indented, line(s).  A blank line ends a section.
    """
    result: dict[str, str] = {}
    current = None
    in_section = False
    for line in text.splitlines():
        if not line.strip():
            in_section, current = False, None
        elif line in ("options:", "positional arguments:"):
            in_section = True
        elif in_section:
            match = re.match(r"^ {2,4}(\S.*?)(?: {2,}(\S.*))?$", line)
            if match:
                current = match.group(1)
                result[current] = match.group(2) or ""
            elif current is not None:
                result[current] = f"{result[current]} {line.strip()}".strip()
    return result


def section(text: str, name: str) -> str:
    """The paragraph(s) of ``text`` between the usage and ``name``."""
    return text.split("\n\n", 1)[1].split(name, 1)[0]


def test_nodepool_help_lists_every_command_with_a_summary(capsys):
    listed = entries(nodepool_help(capsys))
    for command in COMMANDS:
        assert listed.get(command), f"{command} has no summary"


def test_nodepool_help_describes_every_global_option(capsys):
    text = nodepool_help(capsys)
    listed = entries(text)
    for option in NODEPOOL_OPTIONS:
        key = next((k for k in listed if k.startswith(option)), None)
        assert key is not None, option
        assert listed[key], f"{option} has no description"
    assert "/etc/nodepool/nodepool.yaml" in listed["-c CONFIG"]
    # The epilog explains exit statuses and where the details are.
    assert "Exit status" in text and "<command> --help" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_is_complete(capsys, command):
    text = nodepool_help(capsys, command)
    assert text.startswith(f"usage: nodepool {command}")
    description = section(text, "options:").strip()
    assert len(description) > 30, f"{command}: no description"
    listed = entries(text)
    for arg in COMMAND_ARGS[command]:
        key = next((k for k in listed
                    if k == arg or k.startswith(arg + " ")), None)
        assert key is not None, f"{command}: {arg} missing"
    for invocation, desc in listed.items():
        if invocation != "<command>":
            assert desc, f"{command}: {invocation} has no description"


def test_every_command_of_the_parser_is_tested():
    # A command added to the parser must be added to this test (and the
    # operations page) too.
    parser = nodepoolcmd.build_parser()
    sub = next(a for a in parser._actions
               if a.__class__.__name__ == "_SubParsersAction")
    assert sorted(sub.choices) == sorted(COMMANDS)


def test_launcher_help_describes_every_option(capsys):
    text = launcher_help(capsys)
    listed = entries(text)
    for option in LAUNCHER_OPTIONS:
        key = next((k for k in listed if k.startswith(option)), None)
        assert key is not None, option
        assert listed[key], f"{option} has no description"
    assert set(listed) == {next(k for k in listed if k.startswith(o))
                           for o in LAUNCHER_OPTIONS}
    assert "/etc/nodepool/nodepool.yaml" in listed["-c CONFIG"]
    assert "/var/run/nodepool/nodepool.pid" in listed["-p PIDFILE"]
    for signal_name in ("SIGINT", "SIGUSR1", "SIGTERM", "SIGUSR2"):
        assert signal_name in text
    assert "STATSD_HOST" in text


def test_shared_options_read_the_same(capsys):
    ours = entries(nodepool_help(capsys))
    theirs = entries(launcher_help(capsys))
    for option in ("--version", "-l LOGCONFIG", "-c CONFIG", "-s SECURE"):
        assert ours[option] == theirs[option], option


def test_entries_parser_reads_wrapped_and_bare_entries():
    text = ("usage: x\n\noptions:\n  -h, --help  show help\n"
            "  -p PIDFILE    pid file when daemonised (default:\n"
            "                /var/run/x.pid)\n  --bare\n\nepilog\n")
    assert entries(text) == {"-h, --help": "show help",
                             "-p PIDFILE": "pid file when daemonised "
                             "(default: /var/run/x.pid)",
                             "--bare": ""}


def _script(name: str) -> str:
    path = shutil.which(name, path=os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if path is None:
        pytest.fail(f"console script {name} is not installed")
    return path


@pytest.mark.parametrize("script", ["nodepool", "nodepool-launcher"])
def test_console_scripts_print_help_and_version(script):
    result = subprocess.run([_script(script), "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script} ")
    result = subprocess.run([_script(script), "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"Nodepool version: {__version__}"
