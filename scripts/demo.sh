#!/usr/bin/env bash
# The main job on the embedded default, no network needed once installed:
# pull the bundled busybox OCI layout, mount it as a container layer, run a
# command inside it (chroot), show where the write landed, then remove the container.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ ! -f build/Release/tsgraph_native.node ] || [ ! -f dist/cli/main.js ]; then
  npm_config_build_from_source=zstd-napi npm ci --no-audit --no-fund
fi
export TSGRAPH_ROOT="${TSGRAPH_ROOT:-/tmp/tsgraph-demo}"
tsgraph() { node dist/cli/main.js "$@"; }
echo "store root: $TSGRAPH_ROOT"
tsgraph pull oci:fixtures/busybox
tsgraph images
name="demo-$$"
root=$(tsgraph mount busybox --name "$name")
trap 'tsgraph rm "$name" >/dev/null' EXIT
echo "mounted at $root"
ls "$root"
chroot "$root" /bin/sh -c 'echo "hello from busybox $(uname -m) on a tsgraph mount"; echo changed > /etc/motd'
tsgraph containers
echo "the container's write went to its own layer:"
find "$TSGRAPH_ROOT" -path '*/c-*' -name motd -not -path '*/merged/*'
