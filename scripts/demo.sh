#!/usr/bin/env bash
# The main job on the embedded default, no network needed once installed:
# pull the bundled busybox OCI layout into a store and list it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ ! -f build/Release/tsgraph_native.node ] || [ ! -f dist/cli/main.js ]; then
  npm_config_build_from_source=zstd-napi npm ci --no-audit --no-fund
fi
export TSGRAPH_ROOT="${TSGRAPH_ROOT:-/tmp/tsgraph-demo}"
echo "store root: $TSGRAPH_ROOT"
node dist/cli/main.js pull oci:fixtures/busybox
node dist/cli/main.js images
