#!/usr/bin/env bash
# scripts/profile_ncu.sh: Nsight Compute on a day18 command, with the metrics the bottleneck
# classifier reads (day18 classify / analyze), written as CSV (ncu --csv --page raw) plus a sidecar
# FILE.meta.json with the ncu version, the GPU, the driver, the command and the metric list.
#
#   scripts/profile_ncu.sh --calibration -o reference/ncu/h200/calibration.csv
#       the kernels of known bottleneck (day18 calibrate --once), one ncu run
#   scripts/profile_ncu.sh -o decode.csv --profile-range -- build-gpu/engine/day18 calibrate \
#       --decode-step --preset llama-1b --batch 8 --context 1024 --once
#       one decode step of the engine's model (its set-up not profiled)
#   scripts/profile_ncu.sh --print-metrics            the metric list, one per line
#
# Options:
#   -o, --out FILE.csv        where the CSV goes (required to profile); FILE.meta.json beside it
#   -k, --kernel FILTER       ncu --kernel-name: a name, or regex:REGEX (default: every kernel)
#   --nvtx RANGE              only kernels inside the push/pop range RANGE of the day18 NVTX
#                             domain (ncu --nvtx --nvtx-include "day18@RANGE/"); RANGE may be a
#                             path: "ModelExecutor/Attention"
#   --profile-range           only kernels between the program's cudaProfilerStart/Stop (ncu
#                             --profile-from-start off): `day18 calibrate --once` and
#                             `--decode-step --once` bracket exactly their kernels; --calibration
#                             sets it
#   -c, --launch-count N      profile at most N launches (after the filters)
#   -s, --launch-skip N       skip the first N matching launches (warm-up)
#   --extra-metrics A,B       more metrics for this run
#   --day18 BIN               the day18 binary of --calibration (default build-gpu/engine/day18,
#                             then build/engine/day18)
#   --ncu BIN                 the ncu binary (default: ncu on PATH, then /usr/local/cuda/bin/ncu)
#   --keep-report             keep FILE.ncu-rep (opens in ncu-ui) beside the CSV
#   --classify                print `day18 classify --ncu FILE.csv --brief` at the end
#   --dry-run                 print the ncu command and stop
#
# How: ncu --export to a report (the program's own output never mixes with the CSV), then
# ncu --import --csv --page raw --print-units base into FILE.csv. --clock-control none keeps the
# GPU's own clocks (what CUDA events see, not ncu's locked base clock). A metric this ncu does not
# know is dropped with a warning and the run repeated without it, so one wrong name never costs a
# profiling run; the sidecar lists what was dropped. Exit status: 0 done, 2 usage, 3 no ncu, 4 ncu
# or the program failed, 5 no kernel profiled.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# ---- the metric list: what engine/profiling/kernel_analysis.cpp reads (a test checks it) -------
# BEGIN METRICS
METRICS=(
  # duration
  gpu__time_duration.sum
  # speed of light: compute (SM) and memory throughput, % of peak, and each memory unit
  sm__throughput.avg.pct_of_peak_sustained_elapsed
  gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed
  dram__throughput.avg.pct_of_peak_sustained_elapsed
  lts__throughput.avg.pct_of_peak_sustained_elapsed
  l1tex__throughput.avg.pct_of_peak_sustained_active
  # pipes: tensor cores (hmma, and sm_90's wgmma), FMA, ALU, FP64
  sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_active
  sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active
  sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active
  sm__inst_executed_pipe_tensor_op_hmma.sum
  sm__inst_executed_pipe_tensor_op_gmma.sum
  sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active
  sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active
  sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active
  sm__inst_executed_pipe_fp64.avg.pct_of_peak_sustained_active
  # occupancy: achieved, theoretical, and the blocks per SM each resource allows
  sm__warps_active.avg.pct_of_peak_sustained_active
  sm__maximum_warps_per_active_cycle_pct
  launch__occupancy_limit_registers
  launch__occupancy_limit_shared_mem
  launch__occupancy_limit_warps
  launch__occupancy_limit_blocks
  # launch statistics
  launch__waves_per_multiprocessor
  launch__grid_size
  launch__block_size
  launch__registers_per_thread
  launch__shared_mem_per_block
  launch__shared_mem_per_block_static
  launch__shared_mem_per_block_dynamic
  launch__sm_count
  # global loads: bytes used per sector fetched, sectors per request
  smsp__sass_average_data_bytes_per_sector_mem_global_op_ld.pct
  l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum
  l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum
  # bytes through DRAM (the roofline's x axis: intensity = FLOPs / these bytes)
  dram__bytes_read.sum
  dram__bytes_write.sum
  # FP instructions (FLOP = add + mul + 2 fma; tensor-core FLOPs come from the cost model)
  smsp__sass_thread_inst_executed_op_fadd_pred_on.sum
  smsp__sass_thread_inst_executed_op_fmul_pred_on.sum
  smsp__sass_thread_inst_executed_op_ffma_pred_on.sum
  smsp__sass_thread_inst_executed_op_hadd_pred_on.sum
  smsp__sass_thread_inst_executed_op_hmul_pred_on.sum
  smsp__sass_thread_inst_executed_op_hfma_pred_on.sum
  smsp__sass_thread_inst_executed_op_dadd_pred_on.sum
  smsp__sass_thread_inst_executed_op_dmul_pred_on.sum
  smsp__sass_thread_inst_executed_op_dfma_pred_on.sum
  # the SM clock during the run (with --clock-control none it is the GPU's own)
  sm__cycles_elapsed.avg.per_second
)
# END METRICS

die() { printf 'profile_ncu.sh: %s\n' "$1" >&2; exit "${2:-2}"; }
usage() { sed -n '2,38p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

OUT_CSV="" KERNEL="" NVTX="" COUNT="" SKIP="" EXTRA="" DAY18="" NCU="" KEEP=0 CLASSIFY=0 DRY=0
RANGE=0
CALIB=0
CMD=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -o|--out) OUT_CSV="${2:?$1 needs a file}"; shift 2 ;;
    -k|--kernel) KERNEL="${2:?$1 needs a name or regex:REGEX}"; shift 2 ;;
    --nvtx) NVTX="${2:?--nvtx needs a range name}"; shift 2 ;;
    -c|--launch-count) COUNT="${2:?}"; shift 2 ;;
    -s|--launch-skip) SKIP="${2:?}"; shift 2 ;;
    --extra-metrics) EXTRA="${2:?}"; shift 2 ;;
    --day18) DAY18="${2:?}"; shift 2 ;;
    --ncu) NCU="${2:?}"; shift 2 ;;
    --keep-report) KEEP=1; shift ;;
    --classify) CLASSIFY=1; shift ;;
    --dry-run) DRY=1; shift ;;
    --calibration) CALIB=1; shift ;;
    --profile-range) RANGE=1; shift ;;
    --print-metrics) printf '%s\n' "${METRICS[@]}"; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; CMD=("$@"); break ;;
    *) die "unknown option '$1' (--help lists them; the command to profile goes after --)" ;;
  esac
done
[[ -z "$COUNT" || "$COUNT" =~ ^[0-9]+$ ]] || die "--launch-count '$COUNT': not a number"
[[ -z "$SKIP" || "$SKIP" =~ ^[0-9]+$ ]] || die "--launch-skip '$SKIP': not a number"
if [[ -n "$EXTRA" ]]; then
  IFS=',' read -r -a extra_list <<<"$EXTRA"
  METRICS+=("${extra_list[@]}")
fi

if [[ $CALIB == 1 ]]; then
  [[ ${#CMD[@]} -eq 0 ]] || die "--calibration runs day18 calibrate --once itself: no command after --"
  if [[ -z "$DAY18" ]]; then
    for b in "$ROOT/build-gpu/engine/day18" "$ROOT/build/engine/day18"; do
      [[ -x "$b" ]] && { DAY18="$b"; break; }
    done
  fi
  [[ -n "$DAY18" && -x "$DAY18" ]] || die "--calibration: no day18 binary (build it, or --day18 BIN)"
  CMD=("$DAY18" calibrate --once)
  RANGE=1
  # Our kernels and cuBLAS's GEMM (nvjet_sm90_... on CUDA 13, sm90_xmma_gemm_..., cutlass_...); not the set-up fills.
  [[ -n "$KERNEL" ]] || KERNEL='regex:calib_|gemm|xmma|cutlass|nvjet'
fi
[[ ${#CMD[@]} -gt 0 ]] || die "nothing to profile: give --calibration, or the command after -- (--help)"
[[ -n "$OUT_CSV" ]] || die "-o FILE.csv is required (where the CSV goes)"

# ---- ncu ------------------------------------------------------------------------------------------
if [[ -z "$NCU" ]]; then
  NCU="$(command -v ncu || true)"
  [[ -n "$NCU" ]] || { [[ -x /usr/local/cuda/bin/ncu ]] && NCU=/usr/local/cuda/bin/ncu; }
fi
if [[ -z "$NCU" || ! -x "$NCU" ]]; then
  if [[ $DRY == 1 ]]; then NCU=ncu; else
  die "ncu (Nsight Compute) not found on PATH or in /usr/local/cuda/bin: it comes with the CUDA
  Toolkit (apt: cuda-nsight-compute-13-0), or name it with --ncu BIN. Without a GPU, classify the
  recorded CSVs instead: build/engine/day18 classify --ncu reference/ncu/fixtures/calibration_handmade.csv" 3
  fi
fi
NCU_VERSION="$("$NCU" --version 2>/dev/null | tail -1 || echo unknown)"

out_dir="$(dirname "$OUT_CSV")"
mkdir -p "$out_dir"
tmp="$(mktemp -d "$out_dir/.profile_ncu.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

ncu_args=(--export "$tmp/report" --force-overwrite --clock-control none)
[[ -n "$KERNEL" ]] && ncu_args+=(-k "$KERNEL")
[[ -n "$NVTX" ]] && ncu_args+=(--nvtx --nvtx-include "day18@${NVTX}/")
[[ $RANGE == 1 ]] && ncu_args+=(--profile-from-start off)
[[ -n "$COUNT" ]] && ncu_args+=(-c "$COUNT")
[[ -n "$SKIP" ]] && ncu_args+=(-s "$SKIP")

if [[ $DRY == 1 ]]; then
  list="$(IFS=,; echo "${METRICS[*]}")"
  printf '%q ' "$NCU" "${ncu_args[@]}" --metrics "$list" "${CMD[@]}"; echo
  printf '%q ' "$NCU" --import "$tmp/report.ncu-rep" --csv --page raw --print-units base; echo "> $OUT_CSV"
  exit 0
fi

# Profile; a metric ncu does not know is dropped and the run repeated (at most 5 times).
DROPPED=()
app_rc=0
for attempt in 1 2 3 4 5; do
  list="$(IFS=,; echo "${METRICS[*]}")"
  echo "profile_ncu.sh: $NCU_VERSION; ${#METRICS[@]} metrics; ${CMD[*]}" >&2
  set +e
  "$NCU" "${ncu_args[@]}" --metrics "$list" "${CMD[@]}" >"$tmp/ncu.log" 2>&1
  app_rc=$?
  set -e
  unknown=()
  while IFS= read -r line; do
    for mname in "${METRICS[@]}"; do
      base="${mname%%.*}"
      if [[ "$line" == *"$mname"* || "$line" == *"$base "* || "$line" == *"$base\""* ||
            "$line" == *"$base'"* || "$line" == *"$base" ]]; then
        unknown+=("$mname")
      fi
    done
  done < <(grep -iE '==ERROR==.*(metric|counter)' "$tmp/ncu.log" || true)
  [[ ${#unknown[@]} -gt 0 ]] || break
  keep=()
  for mname in "${METRICS[@]}"; do
    drop=0
    for u in "${unknown[@]}"; do [[ "$u" == "$mname" ]] && drop=1; done
    if [[ $drop == 1 ]]; then DROPPED+=("$mname"); else keep+=("$mname"); fi
  done
  echo "profile_ncu.sh: warning: ncu does not know ${unknown[*]}: dropped, profiling again" >&2
  METRICS=("${keep[@]}")
done
if grep -q 'ERR_NVGPUCTRPERM' "$tmp/ncu.log"; then
  tail -5 "$tmp/ncu.log" >&2
  die "ncu may not read the GPU's performance counters (ERR_NVGPUCTRPERM): run as root, or see
  scripts/lab doctor for the fix" 4
fi
if [[ ! -f "$tmp/report.ncu-rep" ]]; then
  tail -20 "$tmp/ncu.log" >&2
  if grep -q 'No kernels were profiled' "$tmp/ncu.log"; then
    die "no kernel was profiled: check -k '$KERNEL'${NVTX:+ and --nvtx '$NVTX'} against the kernels the command launches" 5
  fi
  die "ncu wrote no report (exit $app_rc; its output is above)" 4
fi
"$NCU" --import "$tmp/report.ncu-rep" --csv --page raw --print-units base >"$tmp/out.csv" 2>"$tmp/import.log" ||
  { cat "$tmp/import.log" >&2; die "ncu --import failed" 4; }
grep -q '"Kernel Name"' "$tmp/out.csv" || { head -5 "$tmp/out.csv" >&2; die "the CSV has no header" 5; }
rows=$(($(grep -c '^"' "$tmp/out.csv") - 2))

# ---- provenance sidecar --------------------------------------------------------------------------
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)"
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1 || true)"
# The commit the profiled day18 was built at (its --version), not the tree's git: a build made
# elsewhere and carried to the GPU machine runs in a tree whose git may be stale there.
commit=""
for b in "${CMD[0]:-}" "${DAY18:-}"; do
  if [[ -n "$b" && -x "$b" && "$(basename "$b")" == day18* ]]; then
    commit="$("$b" --version 2>/dev/null | sed -n 's/.*(commit \([0-9a-f]*\)).*/\1/p')"
    [[ -n "$commit" ]] && break
  fi
done
[[ -n "$commit" ]] || commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 - "$tmp/meta.json" "$NCU_VERSION" "$gpu" "$driver" "$commit" "$KERNEL" "$NVTX" "$rows" \
  "$app_rc" "$(IFS=,; echo "${METRICS[*]}")" "$(IFS=,; echo "${DROPPED[*]:-}")" "${CMD[@]}" <<'PY'
import datetime, json, socket, sys
(out, ver, gpu, drv, commit, kern, nvtx, rows, rc, metrics, dropped), cmd = sys.argv[1:12], sys.argv[12:]
json.dump({"made_by": "scripts/profile_ncu.sh", "ncu_version": ver, "gpu": gpu, "driver": drv,
           "commit": commit, "host": socket.gethostname(),
           "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "command": cmd, "kernel_filter": kern, "nvtx_range": nvtx, "launches": int(rows),
           "program_exit_status": int(rc), "ncu_options": "--csv --page raw --print-units base "
           "--clock-control none", "metrics": metrics.split(","),
           "dropped_metrics": [m for m in dropped.split(",") if m]}, open(out, "w"), indent=1)
PY
base="${OUT_CSV%.csv}"
mv "$tmp/out.csv" "$OUT_CSV"
mv "$tmp/meta.json" "$base.meta.json"
[[ $KEEP == 1 ]] && mv "$tmp/report.ncu-rep" "$base.ncu-rep"
echo "profile_ncu.sh: wrote $OUT_CSV ($rows launches) and $base.meta.json${DROPPED:+; dropped: ${DROPPED[*]}}" >&2
[[ $app_rc == 0 ]] || echo "profile_ncu.sh: warning: the profiled command exited with $app_rc" >&2
if [[ $CLASSIFY == 1 ]]; then
  bin="$DAY18"
  [[ -n "$bin" ]] || for b in "$ROOT/build-gpu/engine/day18" "$ROOT/build/engine/day18"; do
    [[ -x "$b" ]] && { bin="$b"; break; }; done
  [[ -n "$bin" ]] && "$bin" classify --ncu "$OUT_CSV" --brief || true
fi
