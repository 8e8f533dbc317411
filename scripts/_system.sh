#!/usr/bin/env bash
# Sourced by scripts/test and .ci/run: install the Debian packages the tests need, when missing.
# As root it installs them with apt-get; otherwise it prints the command to run and fails.
set -euo pipefail

_system_packages=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || _system_packages+=(postgresql)
_system_py="$(command -v python3.11 || command -v python3)" || { echo "no python3.11/python3 on PATH" >&2; exit 1; }
if ! "$_system_py" -c 'import ensurepip' >/dev/null 2>&1; then
  _system_packages+=("python$("$_system_py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv")
fi
# chromium for the UI and HTML-report tests (driven by Playwright with executable_path=/usr/bin/chromium)
command -v chromium >/dev/null || _system_packages+=(chromium)
if ((${#_system_packages[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "the tests need these Debian packages: ${_system_packages[*]}" >&2
    echo "run: sudo apt-get install -y ${_system_packages[*]}" >&2
    exit 1
  fi
  echo "[system] installing: ${_system_packages[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${_system_packages[@]}" >/dev/null
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { echo "initdb still missing after installing postgresql" >&2; exit 1; }
fi
