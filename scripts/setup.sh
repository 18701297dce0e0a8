#!/usr/bin/env bash
# Installs what building and testing Backstop needs on a fresh Debian machine:
# libclang (RocksDB's bindings), a C++ compiler, the MariaDB `mysql` client, curl,
# flock (util-linux), MariaDB Connector/J and a JDK (the JDBC test), an S3-compatible
# test server (moto), PyMySQL, PostgreSQL (the postgresql:// tests start real servers as
# the postgres user the package creates; installing it starts nothing) and cargo-nextest.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The toolchain rust-toolchain.toml pins. rustup cannot download here, so when the
# installed stable is that release, link it under the pinned name; otherwise say how
# to get it.
pin="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
if [ -n "$pin" ] && ! rustup toolchain list | grep -q "^$pin"; then
  have="$(RUSTUP_TOOLCHAIN=stable rustc --version | awk '{print $2}')"
  if [ "$have" = "$pin" ]; then
    host="$(RUSTUP_TOOLCHAIN=stable rustc -vV | sed -n 's/^host: //p')"
    echo "setup: linking the installed stable ($have) as toolchain $pin-$host"
    ln -s "$(RUSTUP_TOOLCHAIN=stable rustc --print sysroot)" "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$pin-$host"
  else
    echo "setup: rust-toolchain.toml pins Rust $pin, stable here is $have: run 'rustup toolchain install $pin'" >&2
    exit 1
  fi
fi

need_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in libclang1-14 libclang-common-14-dev g++ mariadb-client curl util-linux libmariadb-java; do
  have_pkg "$pkg" || need_apt+=("$pkg")
done
# A JDK for the JDBC test (java runs the single-file test program; it needs javac's module).
command -v javac >/dev/null 2>&1 || need_apt+=(openjdk-17-jdk-headless)
# PostgreSQL's server binaries (initdb, postgres) live in /usr/lib/postgresql/N/bin.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The S3-compatible server the tests start (moto), from PyPI.
if ! command -v moto_server >/dev/null 2>&1 || ! python3 -c 'import pymysql' 2>/dev/null; then
  echo "setup: installing moto[server] and PyMySQL"
  python3 -m pip install -q --disable-pip-version-check 'moto[server]' pymysql
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
command -v moto_server >/dev/null 2>&1 || { echo "setup: moto_server is not on PATH after install" >&2; exit 1; }

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
echo "setup: ok"
