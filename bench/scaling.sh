#!/usr/bin/env bash
# bench/scaling.sh: GenerateDataKey throughput of one kmsd node against a
# 3-node cluster with every kmsd capped at the same CPU quota, to emulate
# separate machines on one host (the client is not capped). Needs root and
# the cgroup v1 cpu controller at /sys/fs/cgroup/cpu.
#
#   bench/scaling.sh                 # quota 0.3 core per node, 32 callers
#   QUOTA=50000 C1=32 C3=96 bench/scaling.sh
#
# QUOTA: CPU µs per 100 ms period per node (30000 = 0.3 core); C1, C3: the
# load generator's concurrency against one node and against three; D: the
# measured duration (default 15s, after 5s of warm-up); KMSD_FLAGS: more
# flags for every kmsd (e.g. -audit-fsync=false).
set -euo pipefail
cd "$(dirname "$0")/.."
QUOTA=${QUOTA:-30000} C1=${C1:-32} C3=${C3:-32} D=${D:-15s}
CG=/sys/fs/cgroup/cpu
if [ "$(id -u)" != 0 ] || [ ! -w "$CG" ] || [ ! -e "$CG/cpu.cfs_quota_us" ]; then
  echo "bench/scaling.sh: needs root and the cgroup v1 cpu controller at $CG" >&2
  exit 2
fi
TMP=$(mktemp -d)
groups=()
cleanup() {
  [ -n "${DEVPID:-}" ] && kill -INT "$DEVPID" 2>/dev/null && wait "$DEVPID" 2>/dev/null || true
  [ -d "$TMP/cluster" ] && KMSD_CLUSTER_DIR=$TMP/cluster scripts/cluster.sh down >/dev/null 2>&1 || true
  for g in "${groups[@]}"; do rmdir "$g" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
for n in 1 2 3; do
  g=$CG/kmsd-scaling-$$-$n
  mkdir "$g"; groups+=("$g")
  echo 100000 >"$g/cpu.cfs_period_us"; echo "$QUOTA" >"$g/cpu.cfs_quota_us"
done
CGO_ENABLED=0 go build -o "$TMP/kmsd.bin" ./cmd/kmsd
# A wrapper adds KMSD_FLAGS (scripts/cluster.sh passes none of its own).
printf '#!/bin/sh\nexec %q %s "$@"\n' "$TMP/kmsd.bin" "${KMSD_FLAGS:-}" >"$TMP/kmsd"
chmod +x "$TMP/kmsd"
go build -o "$TMP/load" ./bench/cmd/load
summary() { # $1 = label, $2 = the load generator's output
  echo "$1: $(awk '/^ALL/ {print $4 " ok/s, p99 " $8 " ms"}' "$2"); $(grep -E 'server CPU:|client CPU' "$2" | sed 's/over the window //' | tr '\n' ' ')"
}

# One node.
eval "$(scripts/cluster.sh credentials "$TMP/creds.json")"
"$TMP/kmsd" -dev -data-dir "$TMP/dev" -http-addr 127.0.0.1:18080 -raft-addr 127.0.0.1:18300 \
  -credentials-file "$TMP/creds.json" 2>"$TMP/dev.log" &
DEVPID=$!
echo "$DEVPID" >"${groups[0]}/cgroup.procs"
for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1; done
"$TMP/load" -q -client raw -endpoints http://127.0.0.1:18080 -mix GenerateDataKey=1 -c "$C1" -d "$D" -warmup 5s >"$TMP/one.out"
kill -INT "$DEVPID"; wait "$DEVPID" || true; DEVPID=
summary "1 node, quota $QUOTA, c=$C1" "$TMP/one.out"

# Three nodes.
KMSD_BIN=$TMP/kmsd KMSD_CLUSTER_DIR=$TMP/cluster KMSD_CLUSTER_TLS=0 scripts/cluster.sh up >"$TMP/up.log" 2>&1 || { cat "$TMP/up.log" >&2; exit 1; }
i=0
for p in $(pgrep -f -- "-data-dir $TMP/cluster/n"); do
  echo "$p" >"${groups[$i]}/cgroup.procs"; i=$((i + 1))
done
[ "$i" = 3 ] || { echo "bench/scaling.sh: found $i cluster processes, want 3" >&2; exit 1; }
eval "$(scripts/cluster.sh credentials "$TMP/cluster/credentials.json")"
"$TMP/load" -q -client raw -endpoints http://127.0.0.1:8080,http://127.0.0.1:8081,http://127.0.0.1:8082 \
  -mix GenerateDataKey=1 -c "$C3" -d "$D" -warmup 5s >"$TMP/three.out"
summary "3 nodes, quota $QUOTA each, c=$C3" "$TMP/three.out"
