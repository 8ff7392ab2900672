#!/usr/bin/env bash
# Runs the device bundle (scripts/device/pack.sh) on a GPU machine, from the
# repository root, with var/device carried:
#
#   bash scripts/device/run.sh
#
# Everything it finds goes to $OUT (a temporary folder when unset), five files:
#   run.log          every step's command line and output, in order
#   device-info.txt  uname, CPUs, memory, nvidia-smi, vulkaninfo --summary, the
#                    Vulkan libraries and driver files found (or why missing)
#   steps.jsonl      one JSON line per result (probe, checkpoint, parity, bench
#                    points as they are measured, bench, serve) and per step
#                    status (rc, seconds), written as they happen
#   summary.json     the same, grouped, with a verdict
#   results.md       the tables for docs/BENCHMARKS.md
#
# Steps, in order of value, each under `timeout` and all within a total budget
# (a step that no longer fits is shortened or skipped, and says so):
#   info        nvidia-smi, vulkaninfo --summary
#   probe       can the provider run here (backends, a session, one row)
#   checkpoint  a random BERT-base-sized checkpoint (hidden 768, 12 layers)
#   parity      provider vs cpu on stories260k and on that checkpoint, mixed batch
#   bench       the raw engine on it, batches 1..256 at 64 tokens: provider, then cpu
#   serve       the bundled server on stories260k: a classify, then a bounded HTTP
#               load (127.0.0.1) per front-worker count K, on the provider and on cpu
#   summary     summary.json and results.md (always runs)
# If the provider cannot run (probe fails), its steps are skipped: the CPU steps
# still run, and the probe's exact error is in steps.jsonl and results.md.
#
# Settings (environment):
#   SOFTSERVE_DEVICE_BUNDLE   the tarball [var/device/softserve-device.tar.xz]
#   SOFTSERVE_DEVICE_EP       the provider under test [webgpu]; cpu rehearses the
#                             whole path on a machine without a GPU
#   SOFTSERVE_DEVICE_QUICK=1  small model and batches (a rehearsal on 2 cores)
#   SOFTSERVE_DEVICE_STEPS    comma-separated subset of the steps above [all]
#   SOFTSERVE_DEVICE_K        front-worker counts for the load [1 8]
#   SOFTSERVE_DEVICE_K_VAR    the variable that passes K to the server [SOFTSERVE_FRONT_WORKERS]
#   SOFTSERVE_DEVICE_LOAD_SECONDS  measured seconds of load per run, 0 for none [20; quick 5]
#   SOFTSERVE_DEVICE_BUDGET_S total seconds for all steps before the summary [420]
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUNDLE=${SOFTSERVE_DEVICE_BUNDLE:-$REPO/var/device/softserve-device.tar.xz}
EP=${SOFTSERVE_DEVICE_EP:-webgpu}
QUICK=${SOFTSERVE_DEVICE_QUICK:-0}
STEPS=${SOFTSERVE_DEVICE_STEPS:-info,probe,checkpoint,parity,bench,serve}
KS=${SOFTSERVE_DEVICE_K:-1 8}
K_VAR=${SOFTSERVE_DEVICE_K_VAR:-SOFTSERVE_FRONT_WORKERS}
BUDGET=${SOFTSERVE_DEVICE_BUDGET_S:-420}
if [ "$QUICK" = 1 ]; then LOAD_SECONDS=${SOFTSERVE_DEVICE_LOAD_SECONDS:-5}; else LOAD_SECONDS=${SOFTSERVE_DEVICE_LOAD_SECONDS:-20}; fi
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/softserve-device-out.XXXXXX")}
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/softserve-device.XXXXXX")
LOG=$OUT/run.log
INFO=$OUT/device-info.txt
STEPS_FILE=$OUT/steps.jsonl
: >"$LOG"; : >"$INFO"; : >"$STEPS_FILE"
START=$SECONDS
trap 'rm -rf "$WORK"' EXIT

log() { echo "[$((SECONDS - START))s] $*" | tee -a "$LOG" >&2; }
wants() { case ",$STEPS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
status() { # status NAME RC SECONDS [NOTE]
  printf '{"step":"status","name":"%s","rc":%d,"seconds":%d%s}\n' "$1" "$2" "$3" "${4:+,\"note\":\"$4\"}" >>"$STEPS_FILE"
}
# step NAME TIMEOUT_S COMMAND...: runs COMMAND under timeout (shortened to what
# is left of the budget), output to run.log, and records its status.
step() {
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt 15 ]; then
    log "skip $name: the budget of ${BUDGET}s is spent"
    status "$name" 125 0 "skipped: budget spent"
    return 125
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "step $name (at most ${limit}s): $*"
  local t0=$SECONDS rc
  if declare -F "$1" >/dev/null; then
    # A shell function: timeout needs a program, so a bash that defines it (its variables are exported).
    timeout -k 5 "$limit" bash -c "$(declare -f); $(printf '%q ' "$@")" >>"$LOG" 2>&1
  else
    timeout -k 5 "$limit" "$@" >>"$LOG" 2>&1
  fi
  rc=$?
  [ $rc = 124 ] && log "step $name: timed out after ${limit}s"
  log "step $name: rc $rc in $((SECONDS - t0))s"
  status "$name" "$rc" "$((SECONDS - t0))"
  return $rc
}

# --- unpack ---------------------------------------------------------------------
log "bundle $BUNDLE; provider $EP; quick $QUICK; steps $STEPS; K $KS ($K_VAR); out $OUT"
if [ ! -f "$BUNDLE" ]; then
  log "no bundle at $BUNDLE: run scripts/device/pack.sh and carry var/device"
  status unpack 1 0 "no bundle"
  exit 1
fi
unpack() {
  if command -v xz >/dev/null; then tar -C "$WORK" -xJf "$BUNDLE"
  else python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$BUNDLE" "$WORK"; fi
}
export BUNDLE WORK INFO
step unpack 90 unpack || exit 1
ROOT=$WORK/softserve-device
if [ -x "$ROOT/bin/node" ] && ! "$ROOT/bin/node" -e 0 2>>"$LOG"; then
  # A /tmp mounted noexec, say: try beside the repository instead.
  log "the bundled node does not run from $WORK; moving the bundle to $REPO/var/device-run"
  rm -rf "$REPO/var/device-run" && mkdir -p "$REPO/var/device-run" && cp -a "$ROOT" "$REPO/var/device-run/" && rm -rf "$ROOT"
  ROOT=$REPO/var/device-run/softserve-device
fi
APP=$ROOT/softserve/app
MODEL=$ROOT/shared/models/stories260k
if [ -x "$ROOT/bin/node" ]; then NODE=$ROOT/bin/node; else NODE=$(command -v node || true); fi
[ -n "$NODE" ] || { log "no node in the bundle and none on PATH"; status node 1 0 "no node"; exit 1; }
cat "$ROOT/MANIFEST.txt" >>"$LOG"
DEVICE=("$NODE" "$APP/device.mjs")

# --- the Vulkan loader: private folders, never / --------------------------------
deb_x() { # deb_x FILE DIR: dpkg-deb if there is one, else the ar archive by hand
  if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$1" "$2"; return; fi
  python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], 'rb').read()
pos = 8  # "!<arch>\n", then 60-byte member headers
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip(), int(data[pos + 48:pos + 58])
    body = data[pos + 60:pos + 60 + size]
    if name.startswith('data.tar'):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2])
    pos += 60 + size + (size & 1)
PY
}
VK_LOADER=$WORK/vulkan-loader
VK_TOOLS=$WORK/vulkan-tools
if ls "$ROOT"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
  for d in "$ROOT"/debs/*.deb; do
    case $(basename "$d") in libvulkan1_*|libglvnd0_*) deb_x "$d" "$VK_LOADER" ;; *) deb_x "$d" "$VK_TOOLS" ;; esac
  done
  LOADER_LIB=$VK_LOADER/usr/lib/x86_64-linux-gnu
else
  log "the bundle has no Vulkan loader (packed with --no-apt)"
  LOADER_LIB=
fi
NV_LIBS=
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && NV_LIBS=$NV_LIBS:$d; done
# onnxruntime's WebGPU (Dawn) opens libvulkan.so.1 by name: the loader goes first.
export LD_LIBRARY_PATH=${LOADER_LIB}${NV_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then export VK_DRIVER_FILES=$f VK_ICD_FILENAMES=$f; break; fi
  done
fi
# The driver library the ICD file names must load with what node sees: if
# ldd finds a library missing, the bundle's other libraries go last on the path.
icd_library() {
  local f lib
  for f in ${VK_DRIVER_FILES:-}; do
    lib=$(sed -n 's/.*"library_path"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | head -1)
    case $lib in
      /*) echo "$lib" ;;
      ?*) for d in ${LD_LIBRARY_PATH//:/ } /usr/lib/x86_64-linux-gnu /usr/lib64; do [ -e "$d/$lib" ] && { echo "$d/$lib"; return; }; done
          ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l {print $NF; exit}' ;;
    esac
  done
}
ICD_LIB=$(icd_library)
if [ -n "$ICD_LIB" ] && ldd "$ICD_LIB" 2>&1 | grep -q 'not found'; then
  log "the Vulkan driver $ICD_LIB lacks: $(ldd "$ICD_LIB" 2>&1 | grep 'not found' | awk '{print $1}' | tr '\n' ' ')- adding the bundle's libraries last"
  [ -d "$VK_TOOLS/usr/lib/x86_64-linux-gnu" ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$VK_TOOLS/usr/lib/x86_64-linux-gnu
fi
log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset} driver library ${ICD_LIB:-not found}"
export NODE LOADER_LIB VK_TOOLS ICD_LIB
# The loader's own errors (a driver that does not load, and why) go to run.log with each step's output.
export VK_LOADER_DEBUG=${VK_LOADER_DEBUG:-error,warn}

# --- info -------------------------------------------------------------------------
device_info() {
  echo "== uname"; uname -a
  echo "== cpus: $(nproc)"; grep -m1 'model name' /proc/cpuinfo
  echo "== memory"; free -g 2>/dev/null || head -3 /proc/meminfo
  echo "== node $("$NODE" --version) at $NODE"
  echo "== nvidia-smi"
  if command -v nvidia-smi >/dev/null; then timeout 20 nvidia-smi 2>&1; else echo "nvidia-smi: not on PATH"; fi
  echo "== Vulkan: loader ${LOADER_LIB:-none}, driver files ${VK_DRIVER_FILES:-none found}"
  ls -l "${LOADER_LIB:-/nonexistent}"/libvulkan* 2>&1
  echo "-- ldconfig -p | grep -E 'vulkan|nvidia'"; ldconfig -p 2>/dev/null | grep -E 'vulkan|GLX_nvidia|libnvidia' | head -20
  for f in ${VK_DRIVER_FILES:-}; do echo "-- $f"; cat "$f"; echo; done
  if [ -n "${ICD_LIB:-}" ]; then echo "-- ldd $ICD_LIB"; ldd "$ICD_LIB" 2>&1; fi
  echo "== vulkaninfo --summary"
  if [ -x "$VK_TOOLS/usr/bin/vulkaninfo" ]; then
    LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$VK_TOOLS/usr/lib/x86_64-linux-gnu timeout 30 "$VK_TOOLS/usr/bin/vulkaninfo" --summary 2>&1
    local rc=$?
    echo "(vulkaninfo rc $rc)"
    if [ $rc != 0 ]; then
      echo "== the Vulkan loader's account of its drivers (VK_LOADER_DEBUG=error,warn,driver)"
      VK_LOADER_DEBUG=error,warn,driver LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$VK_TOOLS/usr/lib/x86_64-linux-gnu \
        timeout 30 "$VK_TOOLS/usr/bin/vulkaninfo" --summary 2>&1 | head -80
    fi
  else
    echo "vulkaninfo: not in the bundle (packed with --no-apt)"
  fi
}
write_info() { device_info >"$INFO" 2>&1; }
if wants info; then step info 60 write_info; cat "$INFO" >>"$LOG"; fi

# --- provider steps -----------------------------------------------------------------
EP_OK=0
if wants probe; then
  step "probe-$EP" 90 "${DEVICE[@]}" probe --model "$MODEL" --ep "$EP" --append "$STEPS_FILE" \
    && grep -q "\"step\":\"probe\",\"ep\":\"$EP\",.*\"ok\":true" "$STEPS_FILE" && EP_OK=1
else
  EP_OK=1
fi
[ $EP_OK = 1 ] || log "provider $EP cannot run here: its parity, bench and serve steps are skipped (the error is in steps.jsonl)"

BERT=$WORK/bert-base-random
QUICK_FLAG=(); [ "$QUICK" = 1 ] && QUICK_FLAG=(--quick)
if wants checkpoint || wants parity || wants bench; then
  step checkpoint 120 "${DEVICE[@]}" checkpoint --dir "$BERT" "${QUICK_FLAG[@]}" --append "$STEPS_FILE"
fi
BERT_NAME=bert-base-random; [ "$QUICK" = 1 ] && BERT_NAME=bert-small-random

if wants parity && [ $EP_OK = 1 ]; then
  step "parity-stories260k" 90 "${DEVICE[@]}" parity --model "$MODEL" --name stories260k --ep "$EP" --append "$STEPS_FILE"
  [ -f "$BERT/config.json" ] && step "parity-$BERT_NAME" 120 "${DEVICE[@]}" parity --model "$BERT" --name "$BERT_NAME" --ep "$EP" --append "$STEPS_FILE"
fi

if wants bench && [ -f "$BERT/config.json" ]; then
  if [ "$QUICK" = 1 ]; then BENCH=(--batches 1,2,4,8 --budget-ms 300 --deadline-s 40); LIMIT=60
  else BENCH=(--batches 1,2,4,8,16,32,64,128,256 --tokens 64 --budget-ms 1000 --deadline-s 90); LIMIT=110; fi
  BENCH_EPS=cpu
  if [ "$EP" != cpu ]; then if [ $EP_OK = 1 ]; then BENCH_EPS="$EP cpu"; fi; fi
  for e in $BENCH_EPS; do
    step "bench-$e" "$LIMIT" "${DEVICE[@]}" bench --model "$BERT" --name "$BERT_NAME" --ep "$e" "${BENCH[@]}" --append "$STEPS_FILE"
  done
fi

if wants serve; then
  SERVE_EPS=cpu
  if [ "$EP" != cpu ]; then if [ $EP_OK = 1 ]; then SERVE_EPS="$EP cpu"; fi; fi
  TENANTS=100; CONC=64; [ "$QUICK" = 1 ] && { TENANTS=10; CONC=8; }
  for e in $SERVE_EPS; do
    for k in $KS; do
      step "serve-$e-k$k" $((LOAD_SECONDS + 60)) "${DEVICE[@]}" serve --server "$APP/main.mjs" --loadtest "$APP/loadtest.mjs" \
        --model "$MODEL" --ep "$e" --k "$k" --k-var "$K_VAR" --load-seconds "$LOAD_SECONDS" \
        --tenants "$TENANTS" --concurrency "$CONC" --append "$STEPS_FILE"
    done
  done
fi

# --- summary (outside the budget: it is what the whole run is for) ---------------------
log "summary"
timeout 60 "${DEVICE[@]}" summary --steps "$STEPS_FILE" --json "$OUT/summary.json" --md "$OUT/results.md" >>"$LOG" 2>&1 \
  || log "summary failed: steps.jsonl has the raw results"
log "done in $((SECONDS - START))s; files in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
[ -f "$OUT/results.md" ] && cat "$OUT/results.md"
exit 0
