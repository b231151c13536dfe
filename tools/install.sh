#!/usr/bin/env bash
# Install everything nodepool needs on a Debian machine: the Debian packages
# for the real services the tests and the demo start (ZooKeeper, sshd), a
# virtualenv in .venv and the project with its test extra.  Idempotent: a
# second run checks and returns quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install] %s\n' "$*"; }

need=()
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v keytool >/dev/null 2>&1 || need+=(default-jre-headless)
for extra in ${NODEPOOL_EXTRA_APT:-}; do
    dpkg -s "$extra" >/dev/null 2>&1 || need+=("$extra")
done
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    log "installing Debian packages: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    log "creating virtualenv .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.nodepool-installed
want=$(cat pyproject.toml setup.cfg requirements.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing nodepool and its test dependencies into .venv"
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[test]'
    echo "$want" > "$stamp"
fi
log "ready"
