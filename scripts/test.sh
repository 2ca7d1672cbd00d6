#!/usr/bin/env bash
# Installs what is missing and runs pivot's whole test suite: formatting,
# lints, unit tests, and the integration tests on real MariaDB sandboxes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_deps

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Integration tests mostly wait on servers: run several at once.
cargo test --workspace --locked -- --test-threads="${PIVOT_TEST_THREADS:-4}"
