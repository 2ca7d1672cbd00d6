#!/usr/bin/env bash
# Installs what is missing, builds pivot, starts a throwaway 3-node MariaDB
# sandbox with semi-sync replication, runs the pivot daemon on it, crashes the
# primary (kill -9) and shows pivot fail over, then brings the old primary
# back and shows it fenced. Everything lives in ./sandbox (override with
# PIVOT_TRY_DIR) and is removed at the end unless PIVOT_TRY_KEEP=1.
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

# The application connects only to pivot's proxy write port, on a free port.
PROXY_PORT=16033
while (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null; do PROXY_PORT=$((PROXY_PORT + 1)); done
printf '\n[cluster.proxy]\nwrite = "127.0.0.1:%s"\n' "$PROXY_PORT" >>"$CONFIG"
PROXY="127.0.0.1:$PROXY_PORT"

cleanup() {
    [ -n "${DAEMON:-}" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
    if [ "${PIVOT_TRY_KEEP:-0}" != 1 ]; then $PIVOT sandbox down --dir "$DIR" --remove; fi
}
trap cleanup EXIT

primary() { { $PIVOT status --config "$CONFIG" --json || true; } | grep -m1 -o '"primary": "[^"]*"' | cut -d'"' -f4; }
app() { mariadb --defaults-file="$DIR/app.cnf" -h "${1%:*}" -P "${1##*:}" -e "$2"; }

echo; echo "== the cluster as pivot sees it"
$PIVOT status --config "$CONFIG" || true

echo; echo "== preflight: what pivot check finds, and what a failover would do now (changes nothing)"
$PIVOT check --config "$CONFIG" || true
$PIVOT check --config "$CONFIG" --simulate dead || true

echo; echo "== starting the pivot daemon (log: $DIR/pivot.log)"
$PIVOT run --config "$CONFIG" >"$DIR/pivot.log" 2>&1 &
DAEMON=$!
sleep 1
OLD=$(primary)
echo; echo "== the application writes through pivot's proxy at $PROXY (it reaches $OLD)"
app "$PROXY" "CREATE TABLE demo (id INT PRIMARY KEY, note VARCHAR(40)); INSERT INTO demo VALUES (1, 'before the crash'), (2, 'acknowledged by a replica'); SELECT @@port AS primary_port"

echo; echo "== crash the primary: kill -9 of $OLD"
$PIVOT sandbox kill --dir "$DIR" node1
sleep 2

echo; echo "== pivot failed over"
$PIVOT status --config "$CONFIG" || true
NEW=$(primary)
echo; echo "== the same proxy address now reaches the new primary $NEW: every acknowledged row is there, and it takes writes"
app "$PROXY" "INSERT INTO demo VALUES (3, 'after the failover, same address'); SELECT * FROM demo; SELECT @@port AS primary_port"

echo; echo "== the recovery, step by step"
$PIVOT history --config "$CONFIG"

echo; echo "== the old primary comes back: pivot makes it read-only at once"
$PIVOT sandbox start --dir "$DIR" node1
sleep 1
$PIVOT status --config "$CONFIG" || true
