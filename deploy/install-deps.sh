#!/bin/sh
# install-deps.sh [--test]: install from Debian's packages what inboxd needs to build and
# run (and, with --test, what its test suite needs). Installs only what is missing.
# Run as root (or it uses sudo).
set -eu

BUILD="build-essential cmake pkg-config libgmime-3.0-dev libmicrohttpd-dev libjansson-dev
libsqlite3-dev libpq-dev libcurl4-openssl-dev libglib2.0-dev libxml2-dev libytnef0-dev libssl-dev
libmimalloc-dev"
# postgresql: the e2e_pg tests start a throw-away server of their own (tests/pg/start.sh).
TEST="python3 python3-jsonschema clang libclang-rt-14-dev llvm openssl sqlite3 curl
valgrind procps chromium fonts-dejavu-core postgresql postgresql-client"

pkgs="$BUILD"
if [ "${1:-}" = "--test" ]; then
  pkgs="$BUILD $TEST"
  # The browser test (tests/browser) runs on Node with npm; Debian's only when none is on PATH.
  command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
  command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
fi

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# The tests start PostgreSQL servers of their own: installing the server package must not
# create (and start) a system-wide cluster: postgresql-common first, then its
# create_main_cluster setting (/etc/postgresql-common/createcluster.conf), then the rest.
case " $missing " in
*" postgresql "*)
  $SUDO apt-get install -y -q --no-install-recommends postgresql-common
  $SUDO sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*$/create_main_cluster = false/' \
    /etc/postgresql-common/createcluster.conf
  ;;
esac
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
