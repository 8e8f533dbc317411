#!/usr/bin/env bash
# Sourced by the other scripts: cd to the repository root and make sure .venv
# exists and has `pip install -e '.[dev]'` applied for the current pyproject.toml.
# The install is skipped when the hash of pyproject.toml matches the stamp file.
set -euo pipefail

STEAD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$STEAD_ROOT"

_venv_say() { printf '[venv] %s\n' "$*" >&2; }

_venv_ok_python() { # is "$1" a Python >= 3.11?
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

_venv_pick_python() {
  local candidate
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && _venv_ok_python "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

_venv_create() {
  local py version
  if ! py="$(_venv_pick_python)"; then
    _venv_say "error: need python3.11 (or a python3 that is 3.11+) on PATH" && return 1
  fi
  version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if ! "$py" -c 'import ensurepip' >/dev/null 2>&1; then
    # Debian ships venv's pip bootstrap separately (python3.X-venv).
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      _venv_say "installing python${version}-venv (ensurepip is missing)"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${version}-venv" >/dev/null
    else
      _venv_say "error: $py cannot create virtualenvs; run: sudo apt-get install python${version}-venv"
      return 1
    fi
  fi
  _venv_say "creating .venv with $py (Python $version)"
  rm -rf .venv
  if ! "$py" -m venv .venv; then
    rm -rf .venv
    _venv_say "error: '$py -m venv .venv' failed" && return 1
  fi
}

if [[ ! -x .venv/bin/python ]] || ! _venv_ok_python .venv/bin/python; then
  _venv_create
fi

_venv_stamp=.venv/.stead-pyproject.sha256
_venv_hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ ! -f "$_venv_stamp" || "$(cat "$_venv_stamp")" != "$_venv_hash" ]]; then
  _venv_say "pyproject.toml changed since the last install: pip install -e '.[dev]' (may take a few minutes)"
  rm -f "$_venv_stamp"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  printf '%s\n' "$_venv_hash" >"$_venv_stamp"
  _venv_say "installed"
else
  _venv_say ".venv is up to date"
fi

export VIRTUAL_ENV="$STEAD_ROOT/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
unset _venv_stamp _venv_hash
