#!/usr/bin/env bash
# lxactors set-up and run, for a fresh Debian 12 machine, as root.
#
#   ./go run [ARGS...]   the main job: tcpvm on 127.0.0.1:31337 (ARGS go to
#                        `lxactors tcpvm`); connect with `nc 127.0.0.1 31337`
#   ./go demo            a short container lifecycle demo
#   ./go test [ARGS...]  the test suite (ARGS go to pytest)
#   ./go check           ruff and mypy --strict
#
# Each installs what is missing first: Debian packages (lxc, lxc-dev,
# busybox-static, rsync for liblxc's copy clones, uidmap's newuidmap for user
# namespaces, and a C toolchain for the cffi extension), a virtualenv in
# .venv, and lxactors itself into it.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
VENV=$HERE/.venv

die() { echo "go: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: liblxc needs it to create and start containers"

install_debs() {
    local want=(lxc lxc-dev busybox-static rsync uidmap gcc pkg-config)
    python3 -c 'import venv, ensurepip' 2>/dev/null || want+=(python3-venv)
    python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        2>/dev/null || want+=(python3-dev)
    local missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "go: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

install_venv() {
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    local stamp=$VENV/.lxactors-installed
    local newest
    newest=$(find setup.cfg setup.py pyproject.toml src/lxactors/decl src/lxactors/csrc src/lxactors/_ffi_build.py \
        -newer "$stamp" 2>/dev/null | head -n 1 || true)
    if [ ! -e "$stamp" ] || [ -n "$newest" ] || ! ls src/lxactors/_lxc*.so >/dev/null 2>&1; then
        echo "go: installing lxactors into $VENV" >&2
        "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
        "$VENV/bin/pip" install -q -e ".[test]"
        touch "$stamp"
    fi
}

install_check_tools() {
    "$VENV/bin/python" -c 'import mypy, ruff' 2>/dev/null || "$VENV/bin/pip" install -q mypy ruff
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    run)
        install_debs; install_venv
        exec "$VENV/bin/lxactors" tcpvm "$@" ;;
    demo)
        install_debs; install_venv
        exec "$VENV/bin/lxactors" demo "$@" ;;
    test)
        install_debs; install_venv
        exec "$VENV/bin/python" -m pytest "$@" ;;
    check)
        install_debs; install_venv; install_check_tools
        "$VENV/bin/ruff" check src tests examples bench
        exec "$VENV/bin/mypy" --strict src/lxactors ;;
    *)
        echo "usage: ./go run [tcpvm args] | ./go demo | ./go test [pytest args] | ./go check" >&2
        exit 2 ;;
esac
