#!/usr/bin/env bash
# Installs what the peer engines of `strata bench --engine` need to build:
# RocksDB's crate generates its bindings with libclang and compiles RocksDB
# with a C++ compiler. Debian/Ubuntu; run as root (or with sudo).
set -euo pipefail
apt-get update
apt-get install -y libclang-dev clang g++ make
