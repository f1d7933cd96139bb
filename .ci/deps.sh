#!/bin/sh
# Installs the Debian packages perfbot builds and tests with, only when some
# are missing (checked with pkg-config and command -v first).
set -e
need=""
check_pc() { pkg-config --exists "$1" 2>/dev/null || need="$need $2"; }
check_cmd() { command -v "$1" >/dev/null 2>&1 || need="$need $2"; }
check_dir() { [ -d "$1" ] || need="$need $2"; }
check_cmd pkg-config pkg-config
check_cmd cc gcc
check_cmd make make
check_pc libmicrohttpd libmicrohttpd-dev
check_pc openssl libssl-dev
check_pc libjwt libjwt-dev
check_pc jansson libjansson-dev
check_pc libcurl libcurl4-openssl-dev
check_pc libgit2 libgit2-dev
check_pc sqlite3 libsqlite3-dev
check_pc yaml-0.1 libyaml-dev
check_pc libpq libpq-dev
check_pc yajl libyajl-dev
check_pc cmocka libcmocka-dev
check_cmd bwrap bubblewrap
check_cmd valgrind valgrind
check_cmd git git
check_cmd setarch util-linux
check_cmd curl curl
check_cmd node nodejs
check_cmd sqlite3 sqlite3
check_cmd python3 python3
# the Helm chart's offline renderer (charts/perfbot/tests/render)
check_cmd go golang-go
check_dir /usr/share/gocode/src/github.com/Masterminds/sprig golang-github-masterminds-sprig-dev
check_dir /usr/share/gocode/src/gopkg.in/yaml.v3 golang-gopkg-yaml.v3-dev
check_dir /usr/share/gocode/src/gopkg.in/yaml.v2 golang-gopkg-yaml.v2-dev
# the store's tests start their own PostgreSQL cluster (tests/lib/pg.sh)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
check_cmd chromium chromium
if [ -z "$need" ]; then exit 0; fi
echo "installing:$need"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $need >/dev/null
