#!/usr/bin/env bash
# Measures `strata load` against one node and against a three-node cluster,
# on this machine, in one run.
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/strata}
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
EOT
}
run() { # label urls...
  local label=$1; shift
  local remotes=""; for u in "$@"; do remotes="$remotes --remote $u"; done
  for c in 1 16; do
    echo "== $label, $c clients"
    $BIN load $remotes --token $TOK --clients $c --ops $((c == 1 ? 3000 : 16000)) --workloads write,read | tail -n +2
  done
}
# One node.
mk 1 7301 '{ id = 1, addr = "127.0.0.1:7301" }'
$BIN serve --config node1-7301.toml 2> single.log & S=$!
sleep 3
run "1 node" http://127.0.0.1:7301
kill $S; wait $S 2>/dev/null
# Three nodes.
P='{ id = 1, addr = "127.0.0.1:7401" }, { id = 2, addr = "127.0.0.1:7402" }, { id = 3, addr = "127.0.0.1:7403" }'
for i in 1 2 3; do mk $i 740$i "$P"; done
for i in 1 2 3; do $BIN serve --config node$i-740$i.toml 2> c$i.log & done
sleep 4
run "3 nodes" http://127.0.0.1:7401 http://127.0.0.1:7402 http://127.0.0.1:7403
pkill -f "strata serve"
