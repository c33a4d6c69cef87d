#!/bin/bash
# Experiment 1: GEMV L2 prefetch distance, unfused SiLU above 8K, cluster sampler; ncu of B=1 attention.
cd /work/main && tar xJf .gpu/b1.tar.xz || exit 1
export LD_LIBRARY_PATH=$PWD/build/lib:/usr/local/cuda/lib64
E=/tmp/e; mkdir -p $E
B=build/engine; T=build/tests/test_engine_kernels
nvidia-smi -L | tee $E/gpu.txt
t0=$SECONDS
REQUIRE_GPU=1 timeout 200 $T --gtest_filter='*Sampling*:Linear*:*RmsNormLinear*:*Gemv*' > $E/tests.txt 2>&1; echo "tests rc=$? $((SECONDS-t0))s" | tee -a $OUT/summary.txt
tail -4 $E/tests.txt >> $OUT/summary.txt; grep -E "^\[  FAILED" $E/tests.txt | head >> $OUT/summary.txt
for tool in memcheck synccheck racecheck; do
  timeout 70 compute-sanitizer --tool $tool --error-exitcode 9 $T --gtest_filter='SamplingGpu.SmallBatches*:SamplingGpu.EdgeCases*:LinearSiluMul.Fused*:LinearGemv.Ragged*:*RmsNormLinear*' > $E/san_$tool.txt 2>&1
  echo "$tool rc=$? $((SECONDS-t0))s $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $E/san_$tool.txt | tail -1)" | tee -a $OUT/summary.txt
done
$B/day18_bench --benchmark_filter='BM_sample_small_batch' --benchmark_min_time=0.05s --benchmark_out=$E/bench_sample.json > $E/bench_sample.txt 2>&1
grep -E "^BM_" $E/bench_sample.txt >> $OUT/summary.txt
for pf in 0 2 4 8; do
  DAY18_GEMV_PREFETCH=$pf $B/day18_bench --benchmark_filter='BM_linear/M:1/.*algo:2|BM_linear_silu_mul' --benchmark_min_time=0.05s --benchmark_out=$E/bench_pf$pf.json > $E/bench_pf$pf.txt 2>&1
  echo "== pf $pf  $((SECONDS-t0))s" >> $OUT/summary.txt; grep -E "^BM_" $E/bench_pf$pf.txt | awk '{print $1, $2, $3}' >> $OUT/summary.txt
done
for v in "0 x" "2 x" "4 x" "8 x" "4 8192" "0 8192"; do
  set -- $v; pf=$1; mk=$2
  envs="DAY18_GEMV_PREFETCH=$pf"; [[ $mk != x ]] && envs="$envs DAY18_SILU_FUSE_MAX_K=$mk"
  presets="llama-1b llama-8b"; [[ $mk != x ]] && presets="llama-8b"
  env $envs timeout 150 python3 scripts/bench_decode.py --presets $presets --batches 1 --graphs on --out $E/sw_${pf}_$mk > $E/sw_${pf}_$mk.txt 2>&1
  echo "== decode pf $pf silu_max_k $mk $((SECONDS-t0))s" >> $OUT/summary.txt; grep -E "^llama|^P =" $E/sw_${pf}_$mk.txt | tail -8 >> $OUT/summary.txt
done
timeout 120 ncu --clock-control none -k regex:paged_attention --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats --section MemoryWorkloadAnalysis --section SchedulerStats -c 4 $B/day18_bench --benchmark_filter='^BM_paged_attention/target_b1_ctx4096' --benchmark_min_time=0.01s > $E/ncu_attn_b1.txt 2>&1
echo "ncu rc=$? $((SECONDS-t0))s" >> $OUT/summary.txt
grep -E "paged_attention|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Grid Size|Block Size|Memory Throughput" $E/ncu_attn_b1.txt | head -40 >> $OUT/summary.txt
cd /tmp && tar cJf $OUT/e.tar.xz e 
cat $OUT/summary.txt
