#!/usr/bin/env bash
# scripts/profile_nsys.sh: the `day18 run` workload under Nsight Systems, the seed's command
# (`nsys profile --trace=cuda,nvtx,osrt`) with a current output format: a .nsys-rep report (open
# it in nsys-ui) and, with --sqlite, its SQLite export; then `nsys stats` prints the summaries
# (NVTX ranges, CUDA API, kernels, memory copies).
#
#   scripts/profile_nsys.sh [--out NAME] [--build DIR] [--sqlite] [--no-stats] [-- RUN ARGS...]
#   scripts/profile_nsys.sh --out decode -- --device cuda --preset llama-1b --requests 32 --output-len 64
#
# The engine's NVTX ranges are in the "day18" domain (engine/core/nvtx.h): Scheduler,
# PrepareInputs, Launch > ModelExecutor > Attention / MLP / Norm, Sampling, Wait, ProcessOutputs.
# docs/profiling.md maps nsys's timeline onto `day18 trace`'s, range by range.
#
# Nsight Systems is not part of the CUDA toolkit on every machine (the course's GPU machine has
# none: there, use `day18 trace`, which needs only CUPTI). Without nsys this script says so and
# exits 3. nsys and `day18 trace` cannot run together: both subscribe to CUPTI (day18 trace then
# says so and records the CPU ranges only).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

out="day18_profile"
build=""
sqlite=0
stats=1
run_args=()
usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || { echo "profile_nsys: --out needs a name" >&2; exit 2; }; out="$2"; shift 2 ;;
    --build) [[ $# -ge 2 ]] || { echo "profile_nsys: --build needs a folder" >&2; exit 2; }; build="$2"; shift 2 ;;
    --sqlite) sqlite=1; shift ;;
    --no-stats) stats=0; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; run_args=("$@"); break ;;
    *) echo "profile_nsys: unknown argument '$1' (the workload's flags go after --; --help)" >&2; exit 2 ;;
  esac
done

nsys_bin="$(command -v nsys || true)"
if [[ -z "$nsys_bin" ]]; then
  for c in /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys; do
    [[ -x "$c" ]] && { nsys_bin="$c"; break; }
  done
fi
if [[ -z "$nsys_bin" ]]; then
  cat >&2 <<EOF
profile_nsys: Nsight Systems (nsys) is not installed on this machine.
  Install it from NVIDIA (https://developer.nvidia.com/nsight-systems: the nsight-systems
  package of the CUDA apt repository), or record the same timeline with CUPTI alone:
    build/engine/day18 trace ${run_args[*]:---device cuda} --out trace.json
  and open trace.json in ui.perfetto.dev (docs/profiling.md).
EOF
  exit 3
fi

if [[ -z "$build" ]]; then
  for d in "$ROOT/build-gpu" "$ROOT/build"; do
    [[ -x "$d/engine/day18" ]] && { build="$d"; break; }
  done
fi
day18="${build:-$ROOT/build}/engine/day18"
[[ -x "$day18" ]] || { echo "profile_nsys: $day18 is not built (scripts/lab build)" >&2; exit 2; }
[[ ${#run_args[@]} -gt 0 ]] || run_args=(--device cuda --requests 16 --output-len 32)

cmd=("$nsys_bin" profile --trace=cuda,nvtx,osrt --force-overwrite=true --output="$out")
[[ $sqlite == 1 ]] && cmd+=(--export=sqlite)
cmd+=("$day18" run "${run_args[@]}")
echo "+ ${cmd[*]}"
"${cmd[@]}"
echo "report: $out.nsys-rep (nsys-ui $out.nsys-rep)$([[ $sqlite == 1 ]] && echo "; SQLite: $out.sqlite")"
if [[ $stats == 1 ]]; then
  "$nsys_bin" stats --report nvtx_sum,cuda_api_sum,cuda_gpu_kern_sum,cuda_gpu_mem_time_sum \
    "$out.nsys-rep" || echo "profile_nsys: nsys stats failed (the report is still there)" >&2
fi
