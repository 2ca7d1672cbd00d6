#!/usr/bin/env bash
# Installs what pivot's scripts need on Debian/Ubuntu, only if missing.
# Usage: source scripts/deps.sh; ensure_deps
set -euo pipefail

# etcd-server: the KV route's integration test starts a real etcd.
# protobuf-compiler, libprotobuf-dev: the etcd-client crate compiles etcd's
# .proto files at build time (protoc and google/protobuf/*.proto).
# dnsutils: dig, which the DNS route's integration test queries pivot with.
# mariadb-backup: mariabackup and mbstream, which `pivot rebuild` streams and
# prepares a replica's backup with (its tests run them).
# keepalived: the VIP route's keepalived test runs it (pivot agent sends its
# own gratuitous ARP: no arping needed).
# mariadb-client: also mariadb-binlog, which saves a quarantined former
# primary's extra transactions (pivot::rejoin::extra_file).
# ca-certificates: the roots an https:// webhook is checked against;
# openssl: the webhook's TLS test makes its certificate with it.
PIVOT_PACKAGES=(mariadb-server mariadb-client iproute2 faketime haproxy sysbench etcd-server protobuf-compiler libprotobuf-dev dnsutils keepalived mariadb-backup ca-certificates openssl)

ensure_deps() {
    local missing=()
    for p in "${PIVOT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        # The packaged service is not needed: pivot's sandbox starts its own servers.
        $sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
}
