#!/usr/bin/env bash
# Regenerates the tables of docs/parquet-schemas.md from `sonde schema traces|metrics|logs`.
# The page's prose is kept; only the part between its `BEGIN sonde schema` and
# `END sonde schema` markers is rewritten. The same test, run without SONDE_UPDATE_DOCS, fails
# when the page differs from what the binary prints (tests/run.sh runs it with the others).
set -euo pipefail
cd "$(dirname "$0")/.."
SONDE_UPDATE_DOCS=1 cargo test -p sonde --test docs_parquet_schemas --quiet
echo "docs/parquet-schemas.md: tables regenerated from sonde schema"
