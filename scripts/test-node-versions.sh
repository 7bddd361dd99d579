#!/usr/bin/env bash
# Runs the test suite on each Node.js version ckpt is tested on (20, 22, 24), or on those named: test-node-versions.sh 22 24.
# Each version comes from the npm registry's `node` package into a scratch folder outside the checkout
# (NODE_VERSIONS_DIR, default /tmp/ckpt-node-versions); the machine's own Node is left alone (CI runs that one).
# The code is built once (tsc output does not depend on the Node version); each suite runs with that version's node.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch=${NODE_VERSIONS_DIR:-/tmp/ckpt-node-versions}
versions=("$@")
((${#versions[@]})) || versions=(20 22 24)
(cd "$repo" && npm run -s build)
failed=()
for v in "${versions[@]}"; do
  dir=$scratch/node$v
  if [[ ! -x $dir/node_modules/.bin/node ]]; then
    echo "test-node-versions: installing node@$v into $dir"
    mkdir -p "$dir" && (cd "$dir" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "node@$v" >/dev/null)
  fi
  node=$dir/node_modules/.bin/node
  echo "test-node-versions: Node $("$node" --version)"
  (cd "$repo" && CI=true "$node" scripts/run-tests.js) || failed+=("$v")
done
((${#failed[@]} == 0)) || { echo "test-node-versions: failed on Node ${failed[*]}" >&2; exit 1; }
echo "test-node-versions: passed on Node ${versions[*]}"
