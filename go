#!/usr/bin/env bash
# lxactors set-up and run, for a fresh Debian 12 machine, as root.
#
#   ./go run [ARGS...]   the main job: tcpvm on 127.0.0.1:31337 (ARGS go to
#                        `lxactors tcpvm`); connect with `./go connect`
#   ./go connect [ADDR:PORT]  a terminal on a tcpvm server (default
#                        127.0.0.1:31337): `.venv/bin/lxactors connect`, which
#                        any user may run; `nc`/`socat` work too, if installed
#   ./go demo            a short container lifecycle demo
#   ./go test [ARGS...]  the test suite: without ARGS, the docs build (./go docs), the
#                        root-free unit tests as the user nobody (./go unit) and then the
#                        whole suite as root; with ARGS, only the root run (ARGS go to pytest)
#   ./go unit [ARGS...]  tests/unit as the user nobody (ARGS go to pytest)
#   ./go check           ruff and mypy --strict
#   ./go docs            the reference documentation, into build/docs (index.html);
#                        warnings are errors, an undocumented public name is one
#
# Each installs what is missing first: Debian packages (lxc, lxc-dev,
# busybox-static, rsync for liblxc's copy clones, uidmap's newuidmap for user
# namespaces, sudo for unprivileged mode's helper, and a C toolchain for the cffi extension), a virtualenv in
# .venv, and lxactors itself into it.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
VENV=$HERE/.venv

die() { echo "go: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: liblxc needs it to create and start containers"

install_debs() {
    local want=(lxc lxc-dev busybox-static rsync uidmap sudo gcc pkg-config)
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
    if [ ! -e "$stamp" ] || [ -n "$newest" ] || ! ls src/lxactors/_lxc*.so >/dev/null 2>&1 \
        || [ ! -x src/lxactors/_helper/lxa-launcher ]; then
        echo "go: installing lxactors into $VENV" >&2
        "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
        "$VENV/bin/pip" install -q -e ".[test,ray,docs]"
        touch "$stamp"
    fi
}

install_check_tools() {
    "$VENV/bin/python" -c 'import mypy, ruff' 2>/dev/null || "$VENV/bin/pip" install -q mypy ruff
}

# The docs from scratch (-E: a stale environment would hide a docstring's
# warnings); -n -W: a broken reference or an undocumented public name fails.
build_docs() {
    "$VENV/bin/python" -m sphinx -E -n -W --keep-going -q -b html docs build/docs \
        && echo "go: docs built into build/docs/index.html" >&2
}

as_nobody() {
    runuser -u nobody -- env HOME=/tmp PYTHONDONTWRITEBYTECODE=1 "$@"
}

# tests/unit as nobody: proof that those tests need no root and write nowhere.  They
# run from a copy in a fresh directory under /tmp (src, tests, the venv's packages),
# because nobody may be unable to read this checkout (a clone under /root) or run
# the venv's interpreter (pyenv's, under /root); the copy is removed after.
run_unit() {
    local base ver tmp rc=0
    base=$(readlink -f "$VENV/bin/python")
    ver=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    as_nobody "$base" -c '' 2>/dev/null || base=/usr/bin/python3
    [ "$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$ver" ] \
        || die "the unit run needs a Python $ver that nobody can run (tried $base)"
    tmp=$(mktemp -d /tmp/lxactors-unit-XXXXXX)
    chmod 755 "$tmp"
    cp -a src tests setup.cfg pyproject.toml "$tmp/"
    cp -a "$VENV/lib/python$ver/site-packages" "$tmp/site-packages"
    rm -f "$tmp"/site-packages/__editable__.lxactors*
    "$base" -m venv --without-pip "$tmp/venv" >&2
    echo "$tmp/site-packages" > "$tmp/venv/lib/python$ver/site-packages/lxactors-unit.pth"
    chmod -R a+rX "$tmp"
    (cd "$tmp" && as_nobody PYTHONPATH="$tmp/src" "$tmp/venv/bin/python" -m pytest -q \
        -p no:cacheprovider "$@" tests/unit) || rc=$?
    rm -rf "$tmp"
    [ "$rc" = 5 ] && echo "go: the unit run collected no tests" >&2
    return "$rc"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    run)
        install_debs; install_venv
        exec "$VENV/bin/lxactors" tcpvm "$@" ;;
    connect)
        install_debs; install_venv
        exec "$VENV/bin/lxactors" connect "$@" ;;
    demo)
        install_debs; install_venv
        exec "$VENV/bin/lxactors" demo "$@" ;;
    test)
        install_debs; install_venv
        [ $# -gt 0 ] && exec "$VENV/bin/python" -m pytest "$@"
        docs=0; unit=0; root=0
        build_docs || docs=$?
        run_unit || unit=$?
        "$VENV/bin/python" -m pytest -p no:cacheprovider || root=$?
        [ "$docs" = 0 ] || echo "go: the docs build failed (exit $docs): ./go docs" >&2
        [ "$unit" = 0 ] || echo "go: the unit run as nobody failed (exit $unit)" >&2
        [ "$root" = 0 ] || echo "go: the root run failed (exit $root)" >&2
        [ "$docs" = 0 ] && [ "$unit" = 0 ] && [ "$root" = 0 ] ;;
    unit)
        install_debs; install_venv
        run_unit "$@" ;;
    docs)
        install_debs; install_venv
        build_docs ;;
    check)
        install_debs; install_venv; install_check_tools
        "$VENV/bin/ruff" check src tests examples bench
        exec "$VENV/bin/mypy" --strict src/lxactors ;;
    *)
        echo "usage: ./go run [tcpvm args] | ./go connect [ADDR:PORT] | ./go demo | ./go test [pytest args] | ./go unit [pytest args] | ./go check | ./go docs" >&2
        exit 2 ;;
esac
