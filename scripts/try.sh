#!/usr/bin/env bash
# Installs what is missing, builds pivot, starts a throwaway 3-node MariaDB
# sandbox, runs the pivot daemon on it and shows a failure being handled.
# Everything lives in ./sandbox (override with PIVOT_TRY_DIR) and is removed
# at the end unless PIVOT_TRY_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_deps

cargo build --release --locked --bin pivot
PIVOT=./target/release/pivot
DIR=${PIVOT_TRY_DIR:-$PWD/sandbox}

if [ -f "$DIR/sandbox.json" ]; then $PIVOT sandbox down --dir "$DIR" --remove >/dev/null 2>&1 || true; fi
$PIVOT sandbox up --dir "$DIR" --semi-sync
CONFIG="$DIR/pivot.toml"
APP="--defaults-file=$DIR/app.cnf"

cleanup() {
    [ -n "${DAEMON:-}" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
    if [ "${PIVOT_TRY_KEEP:-0}" != 1 ]; then $PIVOT sandbox down --dir "$DIR" --remove; fi
}
trap cleanup EXIT

echo; echo "== the cluster as pivot sees it"
$PIVOT status --config "$CONFIG" || true

echo; echo "== starting the pivot daemon (log: $DIR/pivot.log)"
$PIVOT run --config "$CONFIG" >"$DIR/pivot.log" 2>&1 &
DAEMON=$!
sleep 1
mariadb $APP -e "CREATE TABLE demo (id INT PRIMARY KEY, at DATETIME(6)); INSERT INTO demo VALUES (1, NOW(6)), (2, NOW(6))"

echo; echo "== crash a replica (SIGKILL node3), then bring it back"
$PIVOT sandbox kill --dir "$DIR" node3
sleep 1
$PIVOT status --config "$CONFIG" || true
$PIVOT sandbox start --dir "$DIR" node3
sleep 1

echo; echo "== what the daemon logged"
sed 's/\x1b\[[0-9;]*m//g' "$DIR/pivot.log" | grep -E "unreachable|reachable again|analysis" || true

echo; echo "== the cluster again"
$PIVOT status --config "$CONFIG" || true
