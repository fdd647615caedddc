#!/usr/bin/env bash
# lxactors set-up and run, for a fresh Debian 12 machine, as root.
#
#   ./go run [ARGS...]   the main job: tcpvm on 127.0.0.1:31337 (ARGS go to
#                        `lxactors tcpvm`); connect with `nc 127.0.0.1 31337`
#   ./go demo            a short container lifecycle demo
#   ./go test [ARGS...]  the test suite: without ARGS, the root-free unit tests as the
#                        user nobody (./go unit) and then the whole suite as root; with
#                        ARGS, only the root run (ARGS go to pytest)
#   ./go unit [ARGS...]  tests/unit as the user nobody (ARGS go to pytest)
#   ./go check           ruff and mypy --strict
#
# Each installs what is missing first: Debian packages (lxc, lxc-dev,
# busybox-static, rsync for liblxc's copy clones, and a C toolchain for the cffi extension), a virtualenv in
# .venv, and lxactors itself into it.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
VENV=$HERE/.venv

die() { echo "go: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: liblxc needs it to create and start containers"

install_debs() {
    local want=(lxc lxc-dev busybox-static rsync gcc pkg-config)
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
    newest=$(find setup.cfg setup.py pyproject.toml src/lxactors/decl src/lxactors/_ffi_build.py \
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

as_nobody() {
    runuser -u nobody -- env HOME=/tmp PYTHONDONTWRITEBYTECODE=1 "$@"
}

# The interpreter for the unprivileged run: the venv's, unless nobody cannot run it
# (its base is under a private home, as pyenv's in /root is); then a venv on the system
# python3 of the same version that reads this venv's packages (a .pth in it).
unit_python() {
    if as_nobody "$VENV/bin/python" -c '' 2>/dev/null; then
        echo "$VENV/bin/python"
        return
    fi
    local unit=$VENV/unit ver
    ver=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ ! -x "$unit/bin/python" ]; then
        [ "$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$ver" ] \
            || die "nobody cannot run $VENV/bin/python, and /usr/bin/python3 is not Python $ver"
        /usr/bin/python3 -m venv --without-pip "$unit" >&2
        echo "import site; site.addsitedir('$VENV/lib/python$ver/site-packages')" \
            > "$unit/lib/python$ver/site-packages/lxactors-venv.pth"
    fi
    echo "$unit/bin/python"
}

# tests/unit as nobody: proof that those tests need no root (and write nowhere in the tree).
run_unit() {
    local py rc=0
    py=$(unit_python)
    as_nobody "$py" -c 'import lxactors.liblxc, tests.unit' 2>/dev/null \
        || die "the user nobody cannot read this checkout or its venv ($HERE): the unit run needs it readable"
    as_nobody "$py" -m pytest -q -p no:cacheprovider "$@" tests/unit || rc=$?
    [ "$rc" = 5 ] && echo "go: the unit run collected no tests" >&2
    return "$rc"
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
        [ $# -gt 0 ] && exec "$VENV/bin/python" -m pytest "$@"
        unit=0; root=0
        run_unit || unit=$?
        "$VENV/bin/python" -m pytest -p no:cacheprovider || root=$?
        [ "$unit" = 0 ] || echo "go: the unit run as nobody failed (exit $unit)" >&2
        [ "$root" = 0 ] || echo "go: the root run failed (exit $root)" >&2
        [ "$unit" = 0 ] && [ "$root" = 0 ] ;;
    unit)
        install_debs; install_venv
        run_unit "$@" ;;
    check)
        install_debs; install_venv; install_check_tools
        "$VENV/bin/ruff" check src tests examples bench
        exec "$VENV/bin/mypy" --strict src/lxactors ;;
    *)
        echo "usage: ./go run [tcpvm args] | ./go demo | ./go test [pytest args] | ./go unit [pytest args] | ./go check" >&2
        exit 2 ;;
esac
