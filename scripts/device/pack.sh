#!/usr/bin/env bash
# Builds the device bundle: everything `scripts/device/run.sh` needs on a GPU
# machine that has no network and no Node, as one xz-compressed tarball.
#
#   bash scripts/device/pack.sh [--out DIR] [--no-node] [--no-ort] [--no-apt]
#
# DIR (default var/device, ignored by git) receives softserve-device.tar.xz
# and MANIFEST.txt, and nothing else: it is what a device call carries.
# The tarball holds one folder, softserve-device/:
#   bin/node                      this machine's node, stripped (--no-node: left out;
#                                 run.sh then uses the node on its PATH)
#   softserve/app/*.mjs           the application, bundled by scripts/device/bundle.ts:
#                                 main.mjs (server), *-worker-entry.mjs (worker threads),
#                                 device.mjs (the device scripts), loadtest.mjs,
#                                 console/ (the web console's static files)
#   softserve/node_modules/       the native packages only: onnxruntime-node (linux-x64
#                                 binaries: libonnxruntime.so.1 + the N-API binding),
#                                 onnxruntime-common, better-sqlite3 (+ bindings,
#                                 file-uri-to-path), uplot's two files the console serves.
#                                 --no-ort: onnxruntime-node is a
#                                 link to this checkout's copy (rehearsals here only)
#   softserve/package.json        name and version (GET /info reads it)
#   shared/models/stories260k     the small model and its tokenizer
#   shared/data/sst2/test.jsonl   texts for the load generator
#   debs/                         Debian's Vulkan loader (libvulkan1, libglvnd0), vulkaninfo
#                                 (vulkan-tools + its X/Wayland client libraries) and
#                                 glvnd's GLX/EGL/GL front libraries, as
#                                 downloaded by apt-get (network needed here, at pack
#                                 time only; --no-apt leaves them out)
#   MANIFEST.txt                  what went in, with sizes and versions
# The random BERT-base-sized checkpoint is not shipped: run.sh generates it.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT_DIR=$REPO/var/device
WITH_NODE=1
WITH_ORT=1
WITH_APT=1
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT_DIR=$2; shift 2 ;;
    --no-node) WITH_NODE=0; shift ;;
    --no-ort) WITH_ORT=0; shift ;;
    --no-apt) WITH_APT=0; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "pack.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
SHARED=${SOFTSERVE_SHARED_DIR:-$REPO/../shared}
MODEL=$SHARED/models/stories260k
NM=$REPO/node_modules
[ -f "$MODEL/config.json" ] || { echo "pack.sh: no model at $MODEL" >&2; exit 1; }
[ -d "$NM/onnxruntime-node" ] || { echo "pack.sh: run npm install first" >&2; exit 1; }

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/softserve-pack.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
R=$STAGE/softserve-device
mkdir -p "$R/bin" "$R/softserve/app" "$R/softserve/node_modules" "$R/shared/models" "$R/shared/data/sst2" "$R/debs"
say() { echo "pack: $*" >&2; }

# --- the application --------------------------------------------------------
say "bundling the application (esbuild)"
node --import tsx "$REPO/scripts/device/bundle.ts" --out "$R/softserve/app" >/dev/null
node -e '
  const p = require(process.argv[1]);
  process.stdout.write(JSON.stringify({ name: p.name, version: p.version, private: true, type: "module" }, null, 2) + "\n");
' "$REPO/package.json" >"$R/softserve/package.json"

# --- native packages: only what loads at run time -----------------------------
copy_pkg() { # copy_pkg NAME PATH... : package.json plus the given paths of node_modules/NAME
  local name=$1; shift
  mkdir -p "$R/softserve/node_modules/$name"
  (cd "$NM/$name" && cp -a --parents package.json "$@" "$R/softserve/node_modules/$name/")
}
ORT_BIN=bin/napi-v6/linux/x64
if [ $WITH_ORT = 1 ]; then
  mkdir -p "$R/softserve/node_modules/onnxruntime-node"
  (cd "$NM/onnxruntime-node" && cp -a --parents package.json $(find dist -name '*.js') "$ORT_BIN/libonnxruntime.so.1" "$ORT_BIN/onnxruntime_binding.node" "$R/softserve/node_modules/onnxruntime-node/")
  mkdir -p "$R/softserve/node_modules/onnxruntime-common"
  (cd "$NM/onnxruntime-common" && cp -a --parents package.json $(find dist -name '*.js' -o -name '*.mjs' -o -name package.json) "$R/softserve/node_modules/onnxruntime-common/")
else
  ln -s "$NM/onnxruntime-node" "$R/softserve/node_modules/onnxruntime-node"
fi
copy_pkg better-sqlite3 lib build/Release/better_sqlite3.node
# Files the server reads at run time beside its code: the console's static
# files (server/console/, found from the bundle's own URL) and the two files
# of the chart library it serves (found through require.resolve).
cp -a "$REPO/server/console" "$R/softserve/app/console"
copy_pkg uplot dist/uPlot.esm.js dist/uPlot.min.css
copy_pkg bindings bindings.js
copy_pkg file-uri-to-path index.js

# --- node ---------------------------------------------------------------------
if [ $WITH_NODE = 1 ]; then
  NODE_BIN=$(node -p 'process.execPath')
  say "node: $NODE_BIN ($(node --version))"
  cp "$NODE_BIN" "$R/bin/node"
  if command -v strip >/dev/null; then strip "$R/bin/node"; else say "no strip here: node ships with its symbols"; fi
fi

# --- model, texts ---------------------------------------------------------------
cp -a "$MODEL" "$R/shared/models/stories260k"
rm -f "$R/shared/models/stories260k/MODEL_CARD.md"
[ -f "$SHARED/data/sst2/test.jsonl" ] && cp "$SHARED/data/sst2/test.jsonl" "$R/shared/data/sst2/"

# --- Vulkan loader and vulkaninfo from Debian -----------------------------------
# The loader (libvulkan1) and GL dispatch (libglvnd0), which NVIDIA's Vulkan
# driver library may need; vulkaninfo and its X/Wayland client libraries; and
# the other glvnd front libraries the device README's recipe brings (run.sh
# puts these last on the path only if the driver library lacks one of them).
VK_PACKAGES="libvulkan1 libglvnd0 vulkan-tools libwayland-client0 libx11-6 libxcb1 libxau6 libxdmcp6 libffi8 libbsd0 libmd0 libxext6 libglx0 libegl1 libgl1 libopengl0 libgles2"
if [ $WITH_APT = 1 ]; then
  say "apt-get download $VK_PACKAGES"
  (cd "$R/debs" && apt-get download $VK_PACKAGES 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2)
  for p in $VK_PACKAGES; do ls "$R/debs/${p}_"*.deb >/dev/null || { say "apt-get did not fetch $p"; exit 1; }; done
fi

# --- manifest, tarball ----------------------------------------------------------
{
  echo "softserve device bundle"
  echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m)"
  echo "node: $([ $WITH_NODE = 1 ] && "$R/bin/node" --version || echo "not shipped (--no-node)")"
  echo "onnxruntime-node: $(node -p "require('$NM/onnxruntime-node/package.json').version")$([ $WITH_ORT = 1 ] || echo ' (linked, --no-ort)')"
  echo "debs: $(cd "$R/debs" && ls | tr '\n' ' ')"
  echo
  echo "uncompressed sizes (KiB):"
  (cd "$R" && du -k --max-depth=3 . | sort -k2)
} >"$R/MANIFEST.txt"

mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR/softserve-device.tar.xz" "$OUT_DIR/MANIFEST.txt"
say "compressing (xz)"
tar -C "$STAGE" -cf - softserve-device | xz -T0 -6 >"$OUT_DIR/softserve-device.tar.xz.part"
mv "$OUT_DIR/softserve-device.tar.xz.part" "$OUT_DIR/softserve-device.tar.xz"
SIZE=$(stat -c %s "$OUT_DIR/softserve-device.tar.xz")
echo "compressed: $SIZE bytes ($(awk "BEGIN{printf \"%.1f\", $SIZE/1048576}") MiB)" >>"$R/MANIFEST.txt"
cp "$R/MANIFEST.txt" "$OUT_DIR/MANIFEST.txt"
say "wrote $OUT_DIR/softserve-device.tar.xz: $(awk "BEGIN{printf \"%.1f\", $SIZE/1048576}") MiB"
if [ "$SIZE" -gt $((60 * 1048576)) ]; then say "over the 60 MiB budget"; exit 1; fi
