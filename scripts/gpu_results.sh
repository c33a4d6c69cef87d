#!/usr/bin/env bash
# scripts/gpu_results.sh: the results that ship in reference/results/<gpu>/, measured on a GPU
# machine for a build folder made elsewhere (docs/gpu.md), in one or two commands of < 10 minutes:
#
#   scripts/gpu_results.sh part1     info bench plots tours        (about 4-5 minutes on an H200)
#   scripts/gpu_results.sh part2     info sweep transformers       (about 3-4 minutes)
#   scripts/gpu_results.sh all       both, one command              (about 8 minutes: tight)
#   scripts/gpu_results.sh bench tours   only these stages
#   scripts/gpu_results.sh --list    the parts and their stages
#
# Stages and the files they write into reference/results/<gpu>/:
#   info          nvidia-smi, day18 --version, the build's sm_ architectures vs the GPU's
#   bench         benchmarks.json: every benchmark of day18_bench (--benchmark_min_time
#                 $BENCH_MIN_TIME); the log and `plot_benchmarks.py --table` go to logs/
#   plots         plots/*.png: scripts/plot_benchmarks.py on benchmarks.json (needs matplotlib)
#   tours         tour.txt (day18 tour --kernels) and pipeline_tour.txt (day18 tour)
#   sweep         decode_sweep.json + .png: scripts/bench_decode.py (llama-1b, llama-8b, random
#                 fp16 weights, batch 1..256, CUDA graphs on and off)
#   transformers  transformers_check_fp32.json, transformers_check_fp16.json (a random small
#                 Llama, day18 generate vs transformers, greedy) and transformers_throughput.json
#                 (random llama-1b-shaped weights, batch 1 and 64, dynamic and static cache);
#                 no download: every model is built by the script from a seed
# and, from every run, gpu_results_<run>.json: the provenance (GPU, NVIDIA driver, CUDA, the commit
# of the binaries from `day18 --version`, date, host), each stage's command, status, seconds and
# files. Each JSON also carries its own provenance (benchmarks.json: "context"; decode_sweep.json:
# "provenance"; transformers_*.json: "versions").
#
# What comes back: $OUT/<gpu>-<run>.tar.xz (paths reference/results/<gpu>/... and
# logs/<run>/..., so `tar xJf` at the repository root puts the results in place), re-packed after
# every stage so that a run cut short still returns what it made, and $OUT/summary.txt (the
# table printed last). The working files are made outside $OUT (the GPU machine returns at most
# 8 files of it).
#
# A stage gets at most what is left of DEADLINE_S (default 560 s from the start, so that the
# last tarball is written before a 10-minute limit), less 20 s to pack: one that would start
# with less than a minute of that is not started (status "no-time"; info always runs).
#
# Environment:
#   BUILD_DIR       build folder (default: build if build/engine/day18_bench exists, else build-gpu)
#   OUT             where the tarball and summary go (default ./gpu_results_out)
#   GPU_SLUG        results folder name (default from the GPU name: h100, h200)
#   BENCH_MIN_TIME  --benchmark_min_time of day18_bench, seconds, a plain number (default 0.1,
#                   what the H100 results used)
#   BENCH_FILTER    benchmark regex (default: all)
#   PYTHON          python with torch, transformers and matplotlib (default python3)
#   DEADLINE_S      seconds from the start the whole run must end by (default 560)
#   DRY_RUN=1       no GPU needed: print each stage's commands instead of running them
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
START=$SECONDS

ALL_STAGES=(info bench plots tours sweep transformers)
PART1=(info bench plots tours)
PART2=(info sweep transformers)

usage() {
  sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

if [[ $# -eq 0 ]]; then
  echo "gpu_results: say what to run: part1, part2, all, or stages (${ALL_STAGES[*]}); --help" >&2
  exit 2
fi
STAGES=()
for a in "$@"; do
  case "$a" in
    -h|--help) usage; exit 0 ;;
    --list) printf '%s\n' "part1: ${PART1[*]}" "part2: ${PART2[*]}" "all: ${ALL_STAGES[*]}"; exit 0 ;;
    part1) STAGES+=("${PART1[@]}") ;;
    part2) STAGES+=("${PART2[@]}") ;;
    all) STAGES+=("${ALL_STAGES[@]}") ;;
    *)
      if [[ " ${ALL_STAGES[*]} " != *" $a "* ]]; then
        echo "gpu_results: unknown part or stage '$a' (part1 part2 all, or: ${ALL_STAGES[*]})" >&2
        exit 2
      fi
      STAGES+=("$a") ;;
  esac
done
# The run's name (in the tarball's and the manifest's names): the part, or the stages.
if [[ $# -eq 1 && " part1 part2 all " == *" $1 "* ]]; then RUN="$1"; else RUN=""; fi
# Each stage once, in the order of ALL_STAGES.
ORDERED=()
for s in "${ALL_STAGES[@]}"; do [[ " ${STAGES[*]} " == *" $s "* ]] && ORDERED+=("$s"); done
STAGES=("${ORDERED[@]}")
[[ -n "$RUN" ]] || RUN="$(IFS=-; echo "${STAGES[*]}")"

BENCH_MIN_TIME="${BENCH_MIN_TIME:-0.1}"
BENCH_FILTER="${BENCH_FILTER:-.}"
PYTHON="${PYTHON:-python3}"
DEADLINE_S="${DEADLINE_S:-560}"
DRY_RUN="${DRY_RUN:-0}"
if ! [[ "$BENCH_MIN_TIME" =~ ^[0-9]*\.?[0-9]+$ ]]; then
  echo "gpu_results: BENCH_MIN_TIME='$BENCH_MIN_TIME' is not a number of seconds (e.g. 0.1; no 's')" >&2
  exit 2
fi
if ! [[ "$DEADLINE_S" =~ ^[0-9]+$ ]]; then
  echo "gpu_results: DEADLINE_S='$DEADLINE_S' is not a whole number of seconds" >&2
  exit 2
fi

if [[ -n "${BUILD_DIR:-}" ]]; then BUILD="$BUILD_DIR"
elif [[ -x build/engine/day18_bench ]]; then BUILD=build
else BUILD=build-gpu; fi
[[ "$BUILD" == /* ]] || BUILD="$ROOT/$BUILD"
DAY18="$BUILD/engine/day18"
BENCH="$BUILD/engine/day18_bench"
if [[ ! -x "$DAY18" ]]; then
  echo "gpu_results: no $DAY18 (set BUILD_DIR, or unpack the carried build first: docs/gpu.md)" >&2
  exit 2
fi
OUT="${OUT:-$ROOT/gpu_results_out}"
mkdir -p "$OUT"
export PATH="/usr/local/cuda/bin:$PATH"
export LD_LIBRARY_PATH="$BUILD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"

gpu_name() { nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1; }
slug() {
  echo "$1" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9\n' ' ' | tr ' ' '\n' |
    grep -v -E '^(nvidia|geforce|tesla|[0-9]+gb|hbm[0-9a-z]*|)$' | paste -sd- -
}
build_commit() {
  "$DAY18" --version 2>/dev/null | sed -n 's/.*(commit \([^)]*\)).*/\1/p'
}

NAME="$(gpu_name)"
SLUG="${GPU_SLUG:-$(slug "$NAME")}"
if [[ -z "$SLUG" ]]; then
  if [[ "$DRY_RUN" == 1 ]]; then SLUG=dry-run
  else echo "gpu_results: nvidia-smi names no GPU (set GPU_SLUG to name the results folder)" >&2; exit 2; fi
fi
COMMIT="$(build_commit)"
STAGE_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/gpu_results.XXXXXX")"
DEST="$STAGE_ROOT/reference/results/$SLUG"
LOGS="$STAGE_ROOT/logs/$RUN"
mkdir -p "$DEST" "$LOGS"
TARBALL="$OUT/$SLUG-$RUN.tar.xz"
MANIFEST="$DEST/gpu_results_$RUN.json"
STAGE_LOG="$LOGS/stages.tsv"  # stage, status, seconds, detail, command, files
: >"$STAGE_LOG"

banner() { printf '\n==== %s\n' "$*"; }
left() { echo $((DEADLINE_S - (SECONDS - START))); }

# run_limited SECONDS LOG CMD...: the command under `timeout`, output to LOG (and the last lines
# shown); with DRY_RUN=1 only the command is printed. Returns the command's status (124: timeout).
run_limited() {
  local limit="$1" log="$2"; shift 2
  echo "\$ $*" >>"$LOGS/commands.txt"
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "  [dry run, limit ${limit}s] $*"
    return 0
  fi
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
}

# record STAGE STATUS SECONDS DETAIL COMMAND FILES...
record() {
  local stage="$1" status="$2" secs="$3" detail="$4" cmd="$5"; shift 5
  local files=""
  local f
  for f in "$@"; do [[ -e "$DEST/$f" ]] && files+="${files:+ }$f"; done
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$stage" "$status" "$secs" "${detail//$'\t'/ }" "$cmd" "$files" >>"$STAGE_LOG"
  printf '  -> %s %s (%ss) %s\n' "$stage" "$status" "$secs" "$detail"
}

# The stage's time limit: its own, cut to what is left of the deadline (minus 20 s to pack).
limit_for() {
  local want="$1" l
  l=$(( $(left) - 20 ))
  (( l < 10 )) && l=10
  (( l < want )) && echo "$l" || echo "$want"
}
enough_time() { (( $(left) - 20 >= 60 )) || [[ "$DRY_RUN" == 1 ]]; }

status_of() {  # rc -> ok / TIMEOUT / FAIL
  case "$1" in 0) echo ok ;; 124|137) echo TIMEOUT ;; *) echo FAIL ;; esac
}

stage_info() {
  banner "info"
  local t=$SECONDS cc built detail status=ok
  {
    echo "gpu_results $RUN, $(date -u +%Y-%m-%dT%H:%M:%SZ), host $(hostname)"
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.max.sm --format=csv 2>&1
    nvcc --version 2>/dev/null | tail -1
    "$DAY18" --version 2>&1
    echo "build: $BUILD"
  } | tee "$LOGS/info.txt"
  cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
  built="$(sed -n 's/^CMAKE_CUDA_ARCHITECTURES:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)"
  detail="${NAME:-no GPU}, sm_${cc:-?}, build for sm_${built:-?}, commit ${COMMIT:-?}"
  if [[ -z "$NAME" ]]; then status=FAIL; detail="nvidia-smi sees no GPU"
  elif [[ -n "$built" && " ${built//;/ } " != *" $cc "* && " ${built//;/ } " != *" ${cc}-real "* ]]; then
    status=FAIL; detail="$NAME is sm_$cc but $BUILD is built for sm_$built"
  fi
  [[ "$DRY_RUN" == 1 ]] && status=ok
  record info "$status" $((SECONDS - t)) "$detail" "nvidia-smi; day18 --version"
}

stage_bench() {
  banner "bench: day18_bench, min time ${BENCH_MIN_TIME}s, filter '$BENCH_FILTER' (about 3-4 minutes)"
  local t=$SECONDS rc n lim cmd
  if [[ ! -x "$BENCH" ]]; then record bench FAIL 0 "$BENCH not built" "" ; return; fi
  lim=$(limit_for 480)
  cmd="day18_bench --benchmark_filter=$BENCH_FILTER --benchmark_min_time=$BENCH_MIN_TIME --benchmark_out=benchmarks.json --benchmark_out_format=json --benchmark_counters_tabular=true"
  run_limited "$lim" "$LOGS/bench.log" "$BENCH" --benchmark_filter="$BENCH_FILTER" \
    --benchmark_min_time="$BENCH_MIN_TIME" --benchmark_out="$DEST/benchmarks.json" \
    --benchmark_out_format=json --benchmark_counters_tabular=true
  rc=$?
  [[ "$DRY_RUN" == 1 ]] && { record bench ok 0 "dry run" "$cmd"; return; }
  tail -5 "$LOGS/bench.log"
  n="$(grep -c '"run_type": "iteration"' "$DEST/benchmarks.json" 2>/dev/null || true)"
  if [[ $rc == 0 && "${n:-0}" -gt 0 ]]; then
    "$PYTHON" scripts/plot_benchmarks.py --table "$DEST/benchmarks.json" >"$LOGS/targets.txt" 2>&1
    tail -14 "$LOGS/targets.txt"
    record bench ok $((SECONDS - t)) "$n results, $(tail -1 "$LOGS/targets.txt" | sed 's/^ *//')" "$cmd" benchmarks.json
  elif [[ $rc == 0 ]]; then
    record bench FAIL $((SECONDS - t)) "no benchmark ran (filter '$BENCH_FILTER')" "$cmd"
  else
    record bench "$(status_of $rc)" $((SECONDS - t)) "day18_bench exit $rc after ${n:-0} results (logs/$RUN/bench.log)" "$cmd" benchmarks.json
  fi
}

stage_plots() {
  banner "plots: scripts/plot_benchmarks.py benchmarks.json --out plots"
  local t=$SECONDS rc cmd="scripts/plot_benchmarks.py benchmarks.json --out plots"
  if [[ "$DRY_RUN" != 1 && ! -s "$DEST/benchmarks.json" ]]; then
    record plots skipped 0 "no benchmarks.json in this run (run the bench stage with it)" "$cmd"; return
  fi
  run_limited "$(limit_for 120)" "$LOGS/plots.log" "$PYTHON" scripts/plot_benchmarks.py \
    "$DEST/benchmarks.json" --out "$DEST/plots"
  rc=$?
  [[ "$DRY_RUN" == 1 ]] && { record plots ok 0 "dry run" "$cmd"; return; }
  tail -8 "$LOGS/plots.log"
  record plots "$(status_of $rc)" $((SECONDS - t)) "$(ls "$DEST/plots" 2>/dev/null | grep -c png) figures" "$cmd" \
    $(cd "$DEST" && ls plots/*.png 2>/dev/null)
}

stage_tours() {
  banner "tours: day18 tour --kernels, day18 tour"
  local t=$SECONDS rc1 rc2 status detail
  run_limited "$(limit_for 180)" "$DEST/tour.txt" "$DAY18" tour --device cuda --kernels
  rc1=$?
  run_limited "$(limit_for 120)" "$DEST/pipeline_tour.txt" "$DAY18" tour --device cuda
  rc2=$?
  [[ "$DRY_RUN" == 1 ]] && { record tours ok 0 "dry run" "day18 tour --device cuda --kernels; day18 tour --device cuda"; return; }
  tail -4 "$DEST/tour.txt"
  tail -4 "$DEST/pipeline_tour.txt"
  status=ok
  [[ $rc1 == 0 && $rc2 == 0 ]] || status="$(status_of $(( rc1 != 0 ? rc1 : rc2 )))"
  detail="kernel tour exit $rc1 ($(grep -c -E ' ok ' "$DEST/tour.txt") ops ok, $(grep -c MISMATCH "$DEST/tour.txt") mismatches), pipeline tour exit $rc2"
  record tours "$status" $((SECONDS - t)) "$detail" \
    "day18 tour --device cuda --kernels > tour.txt; day18 tour --device cuda > pipeline_tour.txt" \
    tour.txt pipeline_tour.txt
}

stage_sweep() {
  banner "sweep: scripts/bench_decode.py (llama-1b and llama-8b, batch 1..256, graphs on/off; about 1 minute)"
  local t=$SECONDS rc cmd="scripts/bench_decode.py --day18 build/engine/day18 --out reference/results/$SLUG"
  run_limited "$(limit_for 300)" "$LOGS/sweep.log" "$PYTHON" scripts/bench_decode.py --day18 "$DAY18" --out "$DEST"
  rc=$?
  [[ "$DRY_RUN" == 1 ]] && { record sweep ok 0 "dry run" "$cmd"; return; }
  tail -12 "$LOGS/sweep.log"
  record sweep "$(status_of $rc)" $((SECONDS - t)) \
    "$(grep -c '^\[' "$LOGS/sweep.log") points, $(grep -c '\[met\]' "$LOGS/sweep.log") targets met, $(grep -c '\[MISSED\]' "$LOGS/sweep.log") missed" \
    "$cmd" decode_sweep.json decode_sweep.png
}

stage_transformers() {
  banner "transformers: scripts/check_against_transformers.py (check fp32 + fp16, then --throughput; about 2-3 minutes)"
  local t=$SECONDS rc1 rc2 tf="$STAGE_ROOT/tf" status detail
  local c1="scripts/check_against_transformers.py --device cuda --dtype fp32 fp16"
  local c2="scripts/check_against_transformers.py --throughput --device cuda --shape llama-1b --batches 1 64 --prompt-len 32 --output-len 64 --tf-static-cache"
  if [[ "$DRY_RUN" != 1 ]] && ! "$PYTHON" -c 'import torch, transformers' 2>"$LOGS/transformers_import.log"; then
    record transformers FAIL $((SECONDS - t)) "$PYTHON cannot import torch and transformers (logs/$RUN/transformers_import.log)" "$c1; $c2"
    return
  fi
  run_limited "$(limit_for 180)" "$LOGS/transformers_check.log" "$PYTHON" scripts/check_against_transformers.py \
    --device cuda --dtype fp32 fp16 --binary "$DAY18" --results "$tf"
  rc1=$?
  run_limited "$(limit_for 300)" "$LOGS/transformers_throughput.log" "$PYTHON" scripts/check_against_transformers.py \
    --throughput --device cuda --shape llama-1b --batches 1 64 --prompt-len 32 --output-len 64 \
    --tf-static-cache --binary "$DAY18" --results "$tf"
  rc2=$?
  [[ "$DRY_RUN" == 1 ]] && { record transformers ok 0 "dry run" "$c1; $c2"; return; }
  # The script names its folder from torch's GPU name; the files go to this run's folder.
  cp "$tf"/*/transformers_*.json "$DEST/" 2>/dev/null
  grep -h -E 'PASS|FAIL' "$LOGS/transformers_check.log" | tail -2
  tail -8 "$LOGS/transformers_throughput.log"
  status=ok
  [[ $rc1 == 0 && $rc2 == 0 ]] || status="$(status_of $(( rc1 != 0 ? rc1 : rc2 )))"
  detail="check exit $rc1 ($(grep -c -- '-> PASS' "$LOGS/transformers_check.log") of 2 dtypes pass), throughput exit $rc2"
  record transformers "$status" $((SECONDS - t)) "$detail" "$c1; $c2" \
    transformers_check_fp32.json transformers_check_fp16.json transformers_throughput.json
}

# The manifest (provenance + every stage) and the tarball, after each stage.
pack() {
  "$PYTHON" - "$STAGE_LOG" "$MANIFEST" "$RUN" "$SLUG" "$NAME" "$COMMIT" "$BUILD" "$BENCH_MIN_TIME" \
    "$DRY_RUN" <<'PY' || echo "gpu_results: could not write the manifest" >&2
import datetime, json, os, platform, subprocess, sys
log, manifest, run, slug, name, commit, build, min_time, dry = sys.argv[1:]

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""

smi = sh("nvidia-smi", "--query-gpu=name,driver_version,compute_cap,memory.total,clocks.max.sm",
         "--format=csv,noheader").splitlines()
f = [x.strip() for x in smi[0].split(",")] if smi else []
nvcc = sh("nvcc", "--version").splitlines()
stages = []
for line in open(log):
    stage, status, secs, detail, cmd, files = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
    stages.append({"stage": stage, "status": status, "seconds": int(secs or 0), "detail": detail,
                   "command": cmd, "files": files.split() if files else []})
doc = {
    "what": f"scripts/gpu_results.sh {run}: results for reference/results/{slug}/",
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "provenance": {
        "gpu": f[0] if f else name, "nvidia_driver": f[1] if len(f) > 1 else "unknown",
        "compute_capability": f[2] if len(f) > 2 else "unknown",
        "memory": f[3] if len(f) > 3 else "unknown", "max_sm_clock": f[4] if len(f) > 4 else "unknown",
        "cuda_toolkit": nvcc[-1] if nvcc else "unknown",
        "commit": commit or "unknown", "day18_version": sh(os.path.join(build, "engine", "day18"), "--version"),
        "host": platform.node(),
    },
    "bench_min_time_s": float(min_time),
    "dry_run": dry == "1",
    "stages": stages,
}
tmp = manifest + ".tmp"
with open(tmp, "w") as fh:
    fh.write(json.dumps(doc, indent=1) + "\n")
os.replace(tmp, manifest)
PY
  tar -C "$STAGE_ROOT" -cf - reference logs | xz -6 -T2 >"$TARBALL.tmp" && mv "$TARBALL.tmp" "$TARBALL"
}

echo "gpu_results $RUN: stages ${STAGES[*]}; ${NAME:-no GPU} -> reference/results/$SLUG/; build $BUILD (commit ${COMMIT:-?}); deadline ${DEADLINE_S}s"
for s in "${STAGES[@]}"; do
  if [[ "$s" != info ]] && ! enough_time; then  # info takes a second
    record "$s" no-time 0 "under a minute left of DEADLINE_S=$DEADLINE_S" ""
    continue
  fi
  "stage_$s"
  pack
done
pack

# Issue 12's table from this run's files (the other GPUs' columns: scripts/results_table.py).
if [[ "$DRY_RUN" != 1 ]]; then
  banner "issue 12's table from this run"
  "$PYTHON" scripts/results_table.py --results "$STAGE_ROOT/reference/results" --gpus "$SLUG" \
    --block issue12 2>&1 | tail -16
fi
{
  echo
  echo "==== gpu_results $RUN summary (${NAME:-no GPU}, commit ${COMMIT:-?}, $((SECONDS - START)) s)"
  printf '%-13s %-8s %5s  %s\n' stage result time detail
  while IFS=$'\t' read -r stage status secs detail _; do
    printf '%-13s %-8s %4ss  %s\n' "$stage" "$status" "$secs" "$detail"
  done <"$STAGE_LOG"
  echo "tarball: $TARBALL ($(du -h "$TARBALL" 2>/dev/null | cut -f1)); at the repository root: tar xJf $(basename "$TARBALL")"
  (cd "$STAGE_ROOT" && find reference logs -type f | sort | sed 's/^/  /')
} | tee "$OUT/summary.txt"
FAILED=$(awk -F'\t' '$2 != "ok" && $2 != "skipped"' "$STAGE_LOG" | wc -l)
rm -rf "$STAGE_ROOT"
[[ "$FAILED" == 0 ]]
