#!/bin/bash
# Experiment 2: GEMV grid caps, unfused SiLU above 8K, cluster sampler vs one block; ncu of B=1 attention.
cd /work/main && tar xJf .gpu/b2.tar.xz || exit 1
export LD_LIBRARY_PATH=$PWD/build/lib:/usr/local/cuda/lib64
E=/tmp/e; mkdir -p $E; S=$OUT/summary.txt
B=build/engine; T=build/tests/test_engine_kernels
t0=$SECONDS
DAY18_GEMV_STAGED_CAP=2 DAY18_GEMV_PLAIN_CAP=2 REQUIRE_GPU=1 timeout 100 $T --gtest_filter='Linear*:*RmsNormLinear*' > $E/tests_cap2.txt 2>&1; echo "tests cap2 rc=$? $((SECONDS-t0))s $(tail -1 $E/tests_cap2.txt)" >> $S
$B/day18_bench --benchmark_filter='BM_sample_small_batch' --benchmark_min_time=0.05 --benchmark_out=$E/bench_sample.json > $E/bench_sample.txt 2>&1
grep -E "^BM_" $E/bench_sample.txt | awk '{print $1, $2, $3}' >> $S
for caps in "4 0" "2 0" "2 2"; do
  set -- $caps
  DAY18_GEMV_STAGED_CAP=$1 DAY18_GEMV_PLAIN_CAP=$2 $B/day18_bench --benchmark_filter='BM_linear/M:1/.*algo:2|BM_linear_silu_mul' --benchmark_min_time=0.05 --benchmark_out=$E/bench_cap$1$2.json > $E/bench_cap$1$2.txt 2>&1
  echo "== caps staged $1 plain $2  $((SECONDS-t0))s" >> $S; grep -E "^BM_" $E/bench_cap$1$2.txt | awk '{print $1, $2, $3}' >> $S
done
run() {  # name, env...
  local name=$1; shift
  env "$@" timeout 100 python3 scripts/bench_decode.py --presets llama-1b llama-8b --batches 1 --graphs on --out $E/sw_$name > $E/sw_$name.txt 2>&1
  echo "== decode $name ($*) $((SECONDS-t0))s" >> $S; grep -E "^llama|^P =" $E/sw_$name.txt | tail -3 >> $S
}
run A X=1
run B DAY18_SAMPLER_BLOCKS=1
run C DAY18_GEMV_STAGED_CAP=2
run D DAY18_GEMV_STAGED_CAP=2 DAY18_GEMV_PLAIN_CAP=2
run E DAY18_SILU_FUSE_MAX_K=8192
run F DAY18_SILU_FUSE_MAX_K=8192 DAY18_GEMV_STAGED_CAP=2 DAY18_GEMV_PLAIN_CAP=2
run A2 X=1
timeout 90 compute-sanitizer --tool racecheck --error-exitcode 9 $T --gtest_filter='SamplingGpu.EdgeCases*' > $E/san_racecheck.txt 2>&1
echo "racecheck rc=$? $((SECONDS-t0))s $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' $E/san_racecheck.txt | tail -1)" >> $S
timeout 100 ncu --clock-control none -k regex:paged_attention --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats --section MemoryWorkloadAnalysis --section SchedulerStats -c 4 $B/day18_bench --benchmark_filter='^BM_paged_attention/target_b1_ctx4096' --benchmark_min_time=0.01 > $E/ncu_attn_b1.txt 2>&1
echo "ncu rc=$? $((SECONDS-t0))s" >> $S
grep -E "  paged_attention|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Grid Size|Block Size|Memory Throughput|Theoretical Occ" $E/ncu_attn_b1.txt | head -40 >> $S
cd /tmp && tar cJf $OUT/e.tar.xz e
cat $S
