#!/usr/bin/env bash
# Measures `strata load` against one node and against a three-node cluster,
# on this machine, in one run.
# LOAD_TLS=1 serves HTTPS with the test certificates (tests/fixtures/tls);
# LOAD_DIR puts the data elsewhere (/dev/shm: no disk syncs).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/strata}
if [ "${LOAD_TLS:-0}" = 1 ]; then
  SCHEME=https; CA="--ca $ROOT/tests/fixtures/tls/ca.pem"
  TLS="[tls]
cert = \"$ROOT/tests/fixtures/tls/node.pem\"
key = \"$ROOT/tests/fixtures/tls/node.key\"
ca = \"$ROOT/tests/fixtures/tls/ca.pem\""
else
  SCHEME=http; CA=""; TLS=""
fi
D=${LOAD_DIR:-/tmp/loadtest}; rm -rf $D; mkdir -p $D; cd $D
TOK=load-token-1234
mk() { # id port peers...
  local id=$1 port=$2; shift 2
  cat > node$id-$port.toml <<EOT
node_id = $id
data_dir = "$D/data$id-$port"
listen = "127.0.0.1:$port"
cluster_token = "a-cluster-secret-for-load"
peers = [ $* ]
tokens = [ { token = "$TOK", identity = "loader" } ]
access_policies = [ { id = "all", effect = "Allow", principals = [ { Identity = "loader" } ], storage_types = [], key_pattern = "*", access = ["Read", "Write", "Delete", "List"] } ]
$TLS
EOT
}
run() { # label urls...
  local label=$1; shift
  local remotes=""; for u in "$@"; do remotes="$remotes --remote $u"; done
  for c in 1 16; do
    echo "== $label, $c clients"
    $BIN load $remotes $CA --token $TOK --clients $c --ops $((c == 1 ? 3000 : 16000)) --workloads write,read | tail -n +2
  done
}
# One node.
mk 1 7301 '{ id = 1, addr = "127.0.0.1:7301" }'
$BIN serve --config node1-7301.toml 2> single.log & S=$!
sleep 3
run "1 node" $SCHEME://127.0.0.1:7301
kill $S; wait $S 2>/dev/null
# Three nodes.
P='{ id = 1, addr = "127.0.0.1:7401" }, { id = 2, addr = "127.0.0.1:7402" }, { id = 3, addr = "127.0.0.1:7403" }'
for i in 1 2 3; do mk $i 740$i "$P"; done
for i in 1 2 3; do $BIN serve --config node$i-740$i.toml 2> c$i.log & done
sleep 4
run "3 nodes" $SCHEME://127.0.0.1:7401 $SCHEME://127.0.0.1:7402 $SCHEME://127.0.0.1:7403
pkill -f "strata serve"
