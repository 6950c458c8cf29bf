#!/usr/bin/env bash
# Sonde's whole test suite: formatting, lints, Rust unit and integration tests, then the
# end-to-end tests (pytest) that run the built binary against real peers. Installs what the
# tests need (a Python venv in .venv) by itself. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# One clean build, no incremental caches: CI starts from nothing and disk is not unlimited.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== tools the tests need"
# systemd-analyze (unit verification) and dpkg-deb come from Debian packages.
if ! command -v systemd-analyze >/dev/null || ! command -v dpkg-deb >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd dpkg >/dev/null
fi
# systemd-journal-remote writes the journal files the journald source tests read; journalctl
# (package systemd) checks the LZ4/XZ fixtures.
if [ ! -x /lib/systemd/systemd-journal-remote ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-journal-remote >/dev/null
fi
# curl is one of the real OTLP/HTTP clients in the receiver tests.
if ! command -v curl >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi
# logger (util-linux) and rsyslog are the real syslog senders in tests/test_syslog.py.
if ! command -v logger >/dev/null || [ ! -x /usr/sbin/rsyslogd ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bsdutils rsyslog >/dev/null
fi
# buildah builds the container image in tests/deploy/test_container.py (no registry needed).
# The systemd VM test (tests/deploy/systemd_vm.sh) installs QEMU and debootstrap itself.
if ! command -v buildah >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi
# cargo-deb builds the Debian package in the packaging tests.
if [ ! -x .tools/bin/cargo-deb ]; then
  cargo install --quiet --locked cargo-deb --version 3.8.0 --root .tools
fi
export PATH="$PWD/.tools/bin:$PATH"

echo "== python venv"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  echo "$want" > "$stamp"
fi

echo "== cargo test"
# The OTLP exporter's peer tests (exporters/tests/otlp_peers.rs) start rotel and a grpcio sink
# from this venv.
SONDE_TEST_VENV="$PWD/.venv" cargo test --workspace
echo "== cargo build (binary for the end-to-end tests)"
cargo build --bins --example spool_tool
# The Parquet end-to-end tests drive the real exporter through this example.
cargo build -p sonde-exporters --example parquet_fixture

echo "== end-to-end tests"
SONDE_BIN="$PWD/target/debug/sonde" .venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
