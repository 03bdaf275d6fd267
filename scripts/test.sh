#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the Debian packages the
# tests use (a real registry, skopeo, umoci, ...), the npm dependencies and the
# native addon, type-checks, then runs every test file.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests drive for real. Installed only when missing.
packages=(docker-registry skopeo umoci busybox-static runc btrfs-progs apache2-utils openssl util-linux uidmap pigz zstd python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# zstd-napi's prebuilt download is unreachable here; build its bundled zstd.
export npm_config_build_from_source=zstd-napi
# The addon: a local build or a prebuild, found as src/native.ts finds it (node-gyp-build).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] || ! node -e "require('node-gyp-build').path('.')" 2>/dev/null; then
  npm ci --no-audit --no-fund
fi
# prebuilds/ for the npm package (test/cli/package-install.test.ts packs it): a no-op when up to date.
npm run --silent prebuild || echo "npm run prebuild failed: test/cli/package-install.test.ts will fail and say why" >&2

npm run --silent typecheck
# CLI tests start the compiled CLI (test/helpers/cli.ts): a tsx start costs ~0.3 s more per run.
npm run --silent build
export TSGRAPH_TEST_CLI=dist

# An expanded file list: node --test given a bare directory finds no .ts files.
mapfile -t files < <(find test -name '*.test.ts' | sort)

# Every test unmounts what it mounted: compare mount points before and after.
mounts() { awk '{print $5}' /proc/self/mountinfo | sort; }
before=$(mounts)
status=0
node --import tsx --test --test-reporter=tap --test-concurrency=1 "${files[@]}" || status=$?
leaked=$(comm -13 <(echo "$before") <(mounts))
if [ -n "$leaked" ]; then
  echo "mounts left behind by the tests:" >&2
  echo "$leaked" >&2
  status=1
fi
exit $status
