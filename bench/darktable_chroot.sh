#!/usr/bin/env bash
# The suite against a newer darktable than the machine's: Debian 13 (trixie) ships darktable 5.0.1. A trixie
# root (debootstrap) holds that darktable; /work, /tmp and /root are bound into it so that this checkout, its
# virtual environment (.venv, made by ./run.sh setup) and the Python it was made with (pyenv's, under /root) run
# there unchanged (another virtual environment: DARKPROXY_VENV). Root only (debootstrap, chroot, mount).
#
#   bash bench/darktable_chroot.sh setup ROOT [SUITE]   debootstrap trixie into ROOT, install darktable there
#                                                       (SUITE trixie-backports: darktable 5.4.1 in place of 5.0.1)
#   bash bench/darktable_chroot.sh run ROOT CMD...      run CMD in ROOT from this checkout, HOME in /tmp
#   bash bench/darktable_chroot.sh umount ROOT          undo the binds
#
# e.g. bash bench/darktable_chroot.sh run /work/trixie python -m pytest -n 1 tests/darktable
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:?setup, run or umount}
root=${2:?the trixie root folder}
shift 2
suite=${1:-trixie}  # setup only: the suite darktable comes from

bind() {
  for d in proc sys dev dev/pts work tmp root; do
    mkdir -p "$root/$d"
    mountpoint -q "$root/$d" || mount --bind "/$d" "$root/$d"
  done
}

case "$cmd" in
  setup)
    command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
    [ -x "$root/usr/bin/apt-get" ] || debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian
    cp /etc/resolv.conf "$root/etc/"
    if [ "$suite" != trixie ]; then
      echo "deb http://deb.debian.org/debian $suite main" > "$root/etc/apt/sources.list.d/$suite.list"
    fi
    bind
    chroot "$root" bash -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q &&
      apt-get install -y -q --no-install-recommends -t "$1" darktable' _ "$suite"
    chroot "$root" darktable-cli --version | head -1
    ;;
  run)
    bind
    home=/tmp/darkproxy-chroot-home
    mkdir -p "$home"
    venv=${DARKPROXY_VENV:-$here/.venv}
    chroot "$root" env HOME="$home" bash -c 'cd "$1" && source "$2/bin/activate" && shift 2 && "$@"' _ "$here" "$venv" "$@"
    ;;
  umount)
    for d in root tmp work dev/pts dev sys proc; do
      mountpoint -q "$root/$d" && umount "$root/$d"
    done
    ;;
  *)
    echo "usage: $0 setup ROOT [SUITE] | run ROOT CMD... | umount ROOT" >&2
    exit 2
    ;;
esac
