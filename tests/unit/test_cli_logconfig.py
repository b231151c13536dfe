"""A bad ``-l`` logging config is one line on stderr and exit status 1.

Run as child processes: a logging config, even a failing one, replaces the
handlers of the process it is applied in.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

BAD = {
    "missing.ini": (None, "file not found"),
    "sections.ini": ("[loggers]\nkeys=root\n", "missing 'formatters'"),
    "syntax.yaml": ("version: 1\nhandlers: [\n",
                    ":3:1: expected the node content, but found "
                    "'<stream end>'"),
    "list.yaml": ("- version\n", "expected a mapping (a logging dictConfig)"),
    "handler.yaml": ("version: 1\nhandlers:\n  f:\n    class: "
                     "logging.FileHandler\n    filename: /nonexistent/x.log"
                     "\nroot: {handlers: [f]}\n",
                     "Unable to configure handler 'f': [Errno 2] No such "
                     "file or directory: '/nonexistent/x.log'"),
    "class.json": ('{"version": 1, "handlers": {"h": {"class": "no.such"}}}',
                   "Unable to configure handler 'h': Cannot resolve "
                   "'no.such': No module named 'no'"),
    "syntax.json": ('{"version": 1,', ":1:15: Expecting property name "
                    "enclosed in double quotes"),
}


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    """``module``'s console-script ``main`` with ``args``."""
    code = f"import sys; from {module} import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("command", [
    ("nodepool.cmd.launcher", "nodepool-launcher", "-f"),
    ("nodepool.cmd.nodepoolcmd", "nodepool", "list"),
], ids=["nodepool-launcher", "nodepool"])
def test_bad_logging_config_is_one_line(tmp_path, name, command):
    module, prog, extra = command
    content, problem = BAD[name]
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    args = ["-l", str(path), "-c", str(tmp_path / "nodepool.yaml")]
    result = run(module, *(args + [extra] if prog == "nodepool"
                           else [extra] + args))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    prefix = f"{prog}: logging config {path}"
    assert result.stderr.startswith(prefix), result.stderr
    assert problem in result.stderr
    assert "Traceback" not in result.stderr


def test_launcher_daemon_mode_reports_before_detaching(tmp_path):
    # Without -f the launcher detaches (stderr becomes /dev/null): the
    # logging config is checked first, on the caller's terminal.
    pidfile = tmp_path / "np.pid"
    result = run("nodepool.cmd.launcher", "-l", str(tmp_path / "nope.yaml"),
                 "-p", str(pidfile), "-c", str(tmp_path / "nodepool.yaml"))
    assert result.returncode == 1
    assert result.stderr == (f"nodepool-launcher: logging config "
                             f"{tmp_path / 'nope.yaml'}: file not found\n")
    assert not pidfile.exists()
