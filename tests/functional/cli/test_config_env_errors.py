"""``config-validate`` and ``nodepool-launcher`` name an unset
``%(NODEPOOL_*)`` variable in one line, as real processes.

The console scripts run with an environment the test controls, so the
variable is really unset (or set) in the process that reads the file.
"""

import os
import subprocess
import sys

BIN = os.path.dirname(sys.executable)

CONFIG = """\
labels:
  - name: small
providers:
  - name: static-1
    driver: static
    pools:
      - name: main
        nodes:
          - name: %(NODEPOOL_TEST_HOST)
            labels: [small]
"""


def run(script, *argv, **env_extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NODEPOOL_")}
    env.update(env_extra)
    return subprocess.run([os.path.join(BIN, script), *argv],
                          capture_output=True, text=True, timeout=60,
                          env=env)


def test_config_validate_names_the_unset_variable(tmp_path):
    path = tmp_path / "nodepool.yaml"
    path.write_text(CONFIG)
    result = run("nodepool", "-c", str(path), "config-validate")
    assert result.returncode == 1
    assert result.stderr == (
        f"{path}:9:19: environment variable NODEPOOL_TEST_HOST is not set, "
        "so %(NODEPOOL_TEST_HOST) is left as written, which is not valid "
        "YAML here\n")
    assert "found character" not in result.stdout + result.stderr
    # Set, the same file is valid.
    good = run("nodepool", "-c", str(path), "config-validate",
               NODEPOOL_TEST_HOST="host1.example.com")
    assert (good.returncode, good.stderr) == (0, "")


def test_launcher_start_names_the_unset_variable(tmp_path):
    path = tmp_path / "nodepool.yaml"
    path.write_text(CONFIG)
    result = run("nodepool-launcher", "-f", "--no-webapp", "-c", str(path))
    assert result.returncode == 1
    assert f"{path}:9:19: environment variable NODEPOOL_TEST_HOST is not " \
        "set" in result.stderr
    assert "found character" not in result.stderr
