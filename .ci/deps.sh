#!/bin/sh
# make deps: install what `make test`, `make bench` and `make deb` need.
#
# Each tool is looked up first (command -v, dpkg -s, rustup), so that on a
# machine that has everything this takes a fraction of a second and touches
# no network. What is missing is installed with apt-get (as root) and rustup;
# where that is not possible the exact command to run is printed and the
# exit status is 1.
set -eu

# command  Debian package that provides it
TOOLS='
cc              gcc
c++             g++
make            make
groff           groff-base
man             man-db
lexgrog         man-db
mandoc          mandoc
valgrind        valgrind
pkg-config      pkg-config
openssl         openssl
nm              binutils
readelf         binutils
taskset         util-linux
systemd-analyze systemd
redis-server    redis-server
redis-cli       redis-tools
memcached       memcached
dpkg-deb        dpkg
dpkg-shlibdeps  dpkg-dev
lintian         lintian
file            file
curl            curl
'
# Packages with no command of their own to look for.
PACKAGES='ca-certificates'

missing=
add() {
    case " $missing " in *" $1 "*) ;; *) missing="$missing $1" ;; esac
}
# shellcheck disable=SC2086
set -- $TOOLS
while [ "$#" -ge 2 ]; do
    command -v "$1" >/dev/null 2>&1 || add "$2"
    shift 2
done
for pkg in $PACKAGES; do
    dpkg -s "$pkg" >/dev/null 2>&1 || add "$pkg"
done

status=0
if [ -n "$missing" ]; then
    cmd="apt-get install -y --no-install-recommends$missing"
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "make deps: missing:$missing (Debian package names); this system has no apt-get:" >&2
        echo "  install the equivalent packages with the system's package manager" >&2
        status=1
    elif [ "$(id -u)" -ne 0 ]; then
        echo "make deps: missing:$missing; run as root:" >&2
        echo "  apt-get update && $cmd" >&2
        echo "(or: sudo make deps)" >&2
        status=1
    else
        echo "make deps: installing$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing
    fi
fi

# The Rust toolchain: cargo itself, and the rustfmt and clippy components
# that `make lint` runs.
if ! command -v cargo >/dev/null 2>&1; then
    echo "make deps: cargo is missing; install the Rust toolchain with:" >&2
    echo "  curl --proto '=https' -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy" >&2
    status=1
else
    comps=
    cargo fmt --version >/dev/null 2>&1 || comps="$comps rustfmt"
    cargo clippy --version >/dev/null 2>&1 || comps="$comps clippy"
    if [ -n "$comps" ]; then
        if command -v rustup >/dev/null 2>&1; then
            echo "make deps: adding the Rust components$comps"
            # shellcheck disable=SC2086
            rustup component add $comps || status=1
        else
            echo "make deps: the Rust components$comps are missing and there is no rustup:" >&2
            echo "  install them with the toolchain's own installer (Debian: apt-get install -y rustfmt rust-clippy)" >&2
            status=1
        fi
    fi
fi

if [ "$status" -eq 0 ]; then
    echo "make deps: everything make test, make bench and make deb need is installed"
fi
exit "$status"
