#!/usr/bin/env bash
# darkproxy's entry points on a fresh Debian/Ubuntu machine:
#   ./run.sh demo [demo options]   install everything, then run the demo
#   ./run.sh test [pytest options] install everything (+ test and check tools: the [dev] extra),
#                                  run the checks, then the whole test suite (what CI runs), one
#                                  pytest-xdist worker per CPU
#   ./run.sh check                 install as for test, then only the checks:
#                                  ruff check, ruff format --check (src tests bench) and mypy
#   ./run.sh setup                 install only (as for test)
# Idempotent: a second run reuses darktable, .venv and the installed package.
# Environment:
#   DARKPROXY_TORCH   pip requirement for torch (default: torch==2.13.0, the CPU wheel;
#                     GPU users: e.g. DARKPROXY_TORCH=torch, or install torch into .venv first)
#   DARKPROXY_PYTHON  python to build .venv with (default: python3)
#   DARKPROXY_TEST_WORKERS  pytest workers for ./run.sh test (default: auto, one per CPU; 0: serially)
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY="${DARKPROXY_PYTHON:-python3}"
APT_UPDATED=0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "run.sh: please install $* with your package manager (no apt-get here)" >&2; exit 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q; APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

setup() {
  local want_test="${1:-0}"
  local pkgs=()
  command -v darktable-cli >/dev/null || pkgs+=(darktable)
  "$PY" -c "import ensurepip, venv" 2>/dev/null || pkgs+=(python3-venv)
  if [ "$want_test" = 1 ]; then
    command -v chromium >/dev/null || command -v chromium-browser >/dev/null || pkgs+=(chromium)
  fi
  if [ "${#pkgs[@]}" -gt 0 ]; then
    echo "run.sh: installing ${pkgs[*]} from apt"
    apt_install "${pkgs[@]}"
  fi
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  local stamp="$VENV/.darkproxy-installed" sig
  sig="$(cat pyproject.toml; echo "test=$want_test torch=${DARKPROXY_TORCH:-}")"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sig" ] && "$VENV/bin/python" -c "import darkproxy, torch" 2>/dev/null; then
    return 0
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null || true
  # --no-compile: no .pyc for every file of every wheel at install (torch alone: ~16 s of its ~22 s here);
  # Python writes them for the modules it imports, on first import
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "run.sh: installing ${DARKPROXY_TORCH:-torch==2.13.0} (see README: GPU users)"
    "$VENV/bin/python" -m pip install -q --no-compile "${DARKPROXY_TORCH:-torch==2.13.0}"
  fi
  local extra=""
  [ "$want_test" = 1 ] && extra="[dev]"  # the [test] extra + ruff and mypy
  "$VENV/bin/python" -m pip install -q --no-compile -e ".$extra"
  printf '%s' "$sig" > "$stamp"
}

checks() {  # all three, then fail if any failed
  local failed=""
  echo "run.sh: ruff check src tests bench"
  "$VENV/bin/python" -m ruff check src tests bench || failed+="${failed:+, }ruff check"
  echo "run.sh: ruff format --check src tests bench"
  "$VENV/bin/python" -m ruff format --check src tests bench || failed+="${failed:+, }ruff format --check"
  echo "run.sh: mypy"
  "$VENV/bin/python" -m mypy || failed+="${failed:+, }mypy"
  if [ -n "$failed" ]; then
    echo "run.sh: checks failed: $failed (how to run and fix each: CONTRIBUTING.md)" >&2
    return 1
  fi
  echo "run.sh: checks passed"
}

cmd="${1:-help}"
shift || true
case "$cmd" in
  setup) setup 1 ;;
  demo)
    setup 0
    if "$VENV/bin/darkproxy" demo --help >/dev/null 2>&1; then
      exec "$VENV/bin/darkproxy" demo "$@"
    fi
    exec "$VENV/bin/darkproxy" doctor
    ;;
  check)
    setup 1
    checks
    ;;
  test)
    setup 1
    checks || exit 1
    # one pytest worker per CPU (tests/_parallel.py: how work is shared); DARKPROXY_TEST_WORKERS=0: serially
    exec "$VENV/bin/python" -m pytest -n "${DARKPROXY_TEST_WORKERS:-auto}" --dist loadscope "$@"
    ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
