#!/usr/bin/env bash
# Three kmsd nodes on loopback: HTTP 8080-8082, Raft 8300/8310/8320, gossip 8301/8311/8321.
#   scripts/cluster.sh run      foreground; Ctrl-C stops all three
#   scripts/cluster.sh up       background; state, logs and pids under ./data/cluster
#   scripts/cluster.sh down     stop the background cluster (SIGINT: nodes stay members, so `up` resumes)
#   scripts/cluster.sh status   each node's /v1/status
#   scripts/cluster.sh reload   SIGHUP the background nodes: re-read the credentials file and certificates
#   scripts/cluster.sh credentials FILE [MODE]
#                               write a demo credentials file FILE (mode MODE, default 600) unless
#                               it exists, and print the export line for its first principal
# The nodes verify AWS SigV4 signatures against $DIR/credentials.json, created on first run with
# one demo principal (arn:aws:iam::111122223333:user/demo, an identity policy allowing kms:*, which
# the default key policy delegates to) and a random secret.
# TLS: on first run a local CA and one certificate per node (IP SAN 127.0.0.1) are made with openssl
# under $DIR/tls; the API is served over https and the nodes use mutual TLS for Raft and forwarding.
# KMSD_CLUSTER_TLS=0 (or no openssl) runs plain HTTP instead (-insecure-plain-http: local tests only).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KMSD_BIN:-bin/kmsd}
DIR=${KMSD_CLUSTER_DIR:-data/cluster}
N=3
TLS=${KMSD_CLUSTER_TLS:-1}
if [ "$TLS" != 0 ] && ! command -v openssl >/dev/null 2>&1; then
  echo "cluster.sh: no openssl: running plain HTTP" >&2; TLS=0
fi
if [ "$TLS" != 0 ]; then SCHEME=https; else SCHEME=http; fi
CA="$DIR/tls/ca.pem"

node_flags() { # $1 = node index 1..3
  local i=$1 off=$(( ($1 - 1) * 10 ))
  echo -node-id "n$i" -region us-east-1 -data-dir "$DIR/n$i" \
    -http-addr "127.0.0.1:$((8079 + i))" -raft-addr "127.0.0.1:$((8300 + off))" \
    -gossip-addr "127.0.0.1:$((8301 + off))" -bootstrap-expect $N \
    -join "127.0.0.1:8301,127.0.0.1:8311,127.0.0.1:8321" -root-key-file "$DIR/root-key" \
    -credentials-file "$DIR/credentials.json"
  if [ "$TLS" != 0 ]; then
    echo -tls-cert "$DIR/tls/n$i.pem" -tls-key "$DIR/tls/n$i-key.pem" -cluster-tls-ca "$CA"
  else
    echo -insecure-plain-http
  fi
}

# make_certs: a local CA and a certificate per node (server and client
# auth, for 127.0.0.1 and localhost), unless they exist.
make_certs() {
  local d="$DIR/tls" i
  [ "$TLS" != 0 ] || return 0
  mkdir -p "$d" && chmod 700 "$d"
  (
    umask 077
    if [ ! -s "$d/ca.pem" ]; then
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -subj "/CN=kmsd local cluster CA" -keyout "$d/ca-key.pem" -out "$d/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    fi
    for i in $(seq 1 $N); do
      [ -s "$d/n$i.pem" ] && continue
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=n$i" \
        -keyout "$d/n$i-key.pem" -out "$d/n$i.csr" 2>/dev/null
      printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth,clientAuth" >"$d/n$i.ext"
      openssl x509 -req -in "$d/n$i.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -CAcreateserial \
        -days 825 -sha256 -extfile "$d/n$i.ext" -out "$d/n$i.pem" 2>/dev/null
      rm -f "$d/n$i.csr" "$d/n$i.ext"
    done
  )
  chmod 644 "$d/ca.pem"
}

# curl_node ARGS: curl with the local CA when TLS is on.
curl_node() {
  if [ "$TLS" != 0 ]; then curl --cacert "$CA" "$@"; else curl "$@"; fi
}

# make_credentials FILE MODE: a credentials file with one demo principal,
# unless FILE exists.
make_credentials() {
  local file=$1 mode=${2:-600} akid secret
  [ -s "$file" ] && return 0
  akid="AKIDKMSDLOCAL$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F')"
  secret=$(head -c 30 /dev/urandom | base64 | tr '+/' 'xy')
  (
    umask 077
    cat >"$file.tmp" <<JSON
{
  "account_id": "111122223333",
  "credentials": [
    {
      "access_key_id": "$akid",
      "secret_access_key": "$secret",
      "arn": "arn:aws:iam::111122223333:user/demo",
      "policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
    }
  ]
}
JSON
  )
  chmod "$mode" "$file.tmp" && mv "$file.tmp" "$file"
}

# export_line FILE: the AWS_* variables of FILE's first principal.
export_line() {
  local akid secret
  akid=$(grep -o '"access_key_id": *"[^"]*"' "$1" | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/')
  secret=$(grep -o '"secret_access_key": *"[^"]*"' "$1" | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/')
  echo "export AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=us-east-1"
}

prepare() {
  [ -x "$BIN" ] || { echo "no $BIN: run 'make build' first" >&2; exit 1; }
  mkdir -p "$DIR" && chmod 700 "$DIR"
  if [ ! -s "$DIR/root-key" ]; then
    (umask 077; head -c 32 /dev/urandom | base64 > "$DIR/root-key")
  fi
  make_credentials "$DIR/credentials.json" 600
  make_certs
}

wait_ready() {
  for i in $(seq 1 $N); do
    for _ in $(seq 1 300); do
      curl_node -fsS "$SCHEME://127.0.0.1:$((8079 + i))/readyz" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
}

banner() {
  local aws="aws" curl="curl -s" tls="plain HTTP (KMSD_CLUSTER_TLS=0): local testing only"
  if [ "$TLS" != 0 ]; then
    aws="aws --ca-bundle $CA" curl="curl -s --cacert $CA"
    tls="https with the local CA $CA (mutual TLS between nodes)"
  fi
  cat <<MSG

kmsd: 3 nodes of region us-east-1 are serving the AWS KMS API over $tls
  $SCHEME://127.0.0.1:8080  $SCHEME://127.0.0.1:8081  $SCHEME://127.0.0.1:8082   (data: $DIR)
Requests are SigV4-verified against $DIR/credentials.json (edit it, then
'scripts/cluster.sh reload' or kill -HUP the nodes). Try, as arn:aws:iam::111122223333:user/demo:
  $(export_line "$DIR/credentials.json")
  KEY=\$($aws --endpoint-url $SCHEME://127.0.0.1:8080 kms create-key --query KeyMetadata.KeyId --output text)
  $aws --endpoint-url $SCHEME://127.0.0.1:8081 kms describe-key --key-id \$KEY
  $curl $SCHEME://127.0.0.1:8082/v1/status
MSG
}

case "${1:-}" in
run)
  prepare
  pids=()
  for i in $(seq 1 $N); do
    # shellcheck disable=SC2046
    "$BIN" $(node_flags "$i") 2> >(sed -u "s/^/[n$i] /" >&2) &
    pids+=($!)
  done
  trap 'echo; echo "stopping..."; kill -INT "${pids[@]}" 2>/dev/null; wait' INT TERM
  wait_ready; banner; echo "Ctrl-C stops all three."
  wait
  ;;
up)
  prepare
  for i in $(seq 1 $N); do
    if [ -f "$DIR/n$i.pid" ] && kill -0 "$(cat "$DIR/n$i.pid")" 2>/dev/null; then
      echo "n$i already running"; continue
    fi
    # shellcheck disable=SC2046
    nohup "$BIN" $(node_flags "$i") >"$DIR/n$i.log" 2>&1 &
    echo $! >"$DIR/n$i.pid"
  done
  wait_ready; banner
  ;;
down)
  pids=()
  for i in $(seq 1 $N); do
    if [ -f "$DIR/n$i.pid" ]; then
      pid=$(cat "$DIR/n$i.pid")
      kill -INT "$pid" 2>/dev/null && pids+=("$pid")
      rm -f "$DIR/n$i.pid"
    fi
  done
  for pid in "${pids[@]}"; do # wait (up to 20s each) so that `up` can follow at once
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  ;;
reload)
  for i in $(seq 1 $N); do
    if [ -f "$DIR/n$i.pid" ] && kill -HUP "$(cat "$DIR/n$i.pid")" 2>/dev/null; then
      echo "n$i: reloading $DIR/credentials.json"
    else
      echo "n$i: not running"
    fi
  done
  ;;
credentials)
  [ -n "${2:-}" ] || { echo "usage: $0 credentials FILE [MODE]" >&2; exit 2; }
  mkdir -p "$(dirname "$2")"
  make_credentials "$2" "${3:-600}"
  export_line "$2"
  ;;
status)
  if [ -x bin/kmsctl ]; then
    # Go programs take their trusted roots from SSL_CERT_FILE.
    if [ "$TLS" != 0 ]; then export SSL_CERT_FILE="$CA"; fi
    exec bin/kmsctl --endpoint "$SCHEME://127.0.0.1:8080" cluster status
  fi
  for i in $(seq 1 $N); do
    printf 'n%s: ' "$i"
    curl_node -fsS "$SCHEME://127.0.0.1:$((8079 + i))/v1/status" 2>/dev/null || echo "not answering"
    echo
  done
  ;;
*)
  echo "usage: $0 run|up|down|status|reload|credentials FILE [MODE]" >&2; exit 2
  ;;
esac
