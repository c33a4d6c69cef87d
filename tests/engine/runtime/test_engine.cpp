// The engine end to end: input batch contents, CPU-backend greedy tokens against the model alone
// (contiguous blocks), preemption by swap losing nothing, async == sync scheduling; on a GPU:
// CUDA vs CPU tokens, CUDA-graph replay vs eager, and the overlap of step N+1's H2D with step N.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <iostream>

#include "engine/ops/attention.h"
#include "engine/ops/cache.h"
#include "engine/runtime/contiguous_batch.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/input_batch.h"
#include "engine/runtime/llama_model.h"
#include "tests/support/test_support.h"

namespace day18 {
namespace {

std::vector<std::vector<int32_t>> prompts_for(int n, int64_t vocab, uint64_t seed, int min_len = 3,
                                              int max_len = 40) {
  Rng rng(seed);
  std::vector<std::vector<int32_t>> ps;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> p(static_cast<size_t>(rng.randint(min_len, max_len)));
    for (auto& t : p) t = static_cast<int32_t>(rng.randint(0, vocab - 1));
    ps.push_back(p);
  }
  return ps;
}

// Greedy tokens of the model alone: one sequence, contiguous blocks, prefill then decode.
std::vector<int32_t> reference_greedy(LlamaModel& model, const std::vector<int32_t>& prompt,
                                      int64_t n) {
  const int64_t bs = model.limits().kv.block_size;
  const int64_t bps = model.limits().max_blocks_per_seq();
  std::vector<int32_t> out, pending = prompt;
  int64_t computed = 0;
  for (int64_t i = 0; i < n; ++i) {
    ContiguousBatch b = make_contiguous_batch({{pending, computed, 0, false}}, bs, bps, Device::cpu);
    const int32_t next = greedy_tokens(model.forward(b.batch))[0];
    out.push_back(next);
    computed += static_cast<int64_t>(pending.size());
    pending = {next};
  }
  return out;
}

EngineConfig tiny_config(Device device = Device::cpu) {
  EngineConfig c;
  c.preset = "tiny";
  c.device = device;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 64;
  c.max_model_len = 128;
  c.num_gpu_blocks = 64;
  c.num_cpu_blocks = 64;
  return c;
}

SamplingParams greedy(int32_t n) {
  SamplingParams p;
  p.temperature = 0.f;
  p.max_tokens = n;
  return p;
}

std::vector<std::vector<int32_t>> run_engine(LLMEngine& e,
                                             const std::vector<std::vector<int32_t>>& prompts,
                                             const std::vector<SamplingParams>& params) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < prompts.size(); ++i) ids.push_back(e.add_request(prompts[i], params[i]));
  e.run_until_done();
  std::vector<std::vector<int32_t>> outs;
  for (int64_t id : ids) outs.push_back(e.scheduler().sequence(id).output);
  return outs;
}

TEST(InputBatch, PacksAHandMadeStepAsTheModelExpects) {
  RuntimeLimits lim;
  lim.max_num_tokens = 32;
  lim.max_num_seqs = 4;
  lim.max_model_len = 64;
  lim.kv.block_size = 4;
  lim.kv.num_blocks = 32;
  BlockManager bm(32, 0, 4, lim.max_blocks_per_seq());
  Sequence a, b;
  a.id = 0;
  a.prompt = {5, 6, 7, 8, 9, 10};  // prefill of 6 tokens
  a.status = SeqStatus::running;
  a.params.temperature = 0.5f;
  a.params.top_k = 3;
  a.params.seed = 77;
  b.id = 1;
  b.prompt = {1, 2, 3};
  b.output = {4};  // decode: position 3 = token 4
  b.num_computed_tokens = 3;
  b.status = SeqStatus::running;
  bm.allocate(b, 1);  // blocks 0
  bm.allocate(a, 6);  // blocks 1, 2
  SchedulerOutput out;
  out.seqs = {{&a, 6, true, true}, {&b, 1, false, true}};
  out.num_prefills = 1;
  out.num_batched_tokens = 7;
  InputBatch ib(lim, Device::cpu);
  const PreparedStep p = ib.prepare(out, bm, 1, /*advanced=*/false, nullptr);
  EXPECT_EQ(p.layout.num_tokens, 7);
  EXPECT_EQ(p.num_sampling, 2);
  const StepTensors v = StepTensors::view(p.layout, ib.staging(1), Device::cpu, p.max_context_len);
  const int32_t* tok = v.batch.token_ids.ptr<int32_t>();
  const int64_t* pos = v.batch.positions.ptr<int64_t>();
  const int64_t* slot = v.batch.slot_mapping.ptr<int64_t>();
  const int32_t* ctx = v.batch.context_lens.ptr<int32_t>();
  const int32_t* sidx = v.batch.seq_idx.ptr<int32_t>();
  EXPECT_EQ(std::vector<int32_t>(tok, tok + 7), (std::vector<int32_t>{5, 6, 7, 8, 9, 10, 4}));
  EXPECT_EQ(std::vector<int64_t>(pos, pos + 7), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 3}));
  // a owns blocks 1, 2 (slots 4..11); b owns block 0, position 3 -> slot 3.
  EXPECT_EQ(std::vector<int64_t>(slot, slot + 7), (std::vector<int64_t>{4, 5, 6, 7, 8, 9, 3}));
  EXPECT_EQ(std::vector<int32_t>(ctx, ctx + 7), (std::vector<int32_t>{1, 2, 3, 4, 5, 6, 4}));
  EXPECT_EQ(std::vector<int32_t>(sidx, sidx + 7), (std::vector<int32_t>{0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(v.batch.max_context_len, 6);
  const int32_t* bt = v.batch.block_tables.ptr<int32_t>();
  const int64_t W = lim.max_blocks_per_seq();
  EXPECT_EQ(bt[0], 1);
  EXPECT_EQ(bt[1], 2);
  EXPECT_EQ(bt[W], 0);
  EXPECT_EQ(v.batch.logits_indices.ptr<int32_t>()[0], 5);
  EXPECT_EQ(v.batch.logits_indices.ptr<int32_t>()[1], 6);
  EXPECT_FLOAT_EQ(v.temperature.ptr<float>()[0], 0.5f);
  EXPECT_EQ(v.top_k.ptr<int32_t>()[0], 3);
  EXPECT_EQ(v.seeds.ptr<int64_t>()[0], 77);
  EXPECT_EQ(v.offsets.ptr<int64_t>()[0], 0);
  EXPECT_EQ(v.offsets.ptr<int64_t>()[1], 1);  // b generated one token so far
  for (int64_t t = 0; t < 7; ++t) EXPECT_EQ(v.src_rows.ptr<int32_t>()[t], -1);

  // Padding to a graph bucket of a decode-only step: slot -1, context 0.
  SchedulerOutput dec;
  dec.seqs = {{&b, 1, false, true}};
  const PreparedStep pd = ib.prepare(dec, bm, 0, false, nullptr, /*pad_to=*/4, /*ctx=*/32);
  const StepTensors vd = StepTensors::view(pd.layout, ib.staging(0), Device::cpu, 32);
  EXPECT_EQ(pd.layout.num_tokens, 4);
  EXPECT_EQ(pd.layout.num_rows, 4);
  EXPECT_EQ(pd.max_context_len, 32);
  for (int64_t t = 1; t < 4; ++t) {
    EXPECT_EQ(vd.batch.slot_mapping.ptr<int64_t>()[t], -1);
    EXPECT_EQ(vd.batch.context_lens.ptr<int32_t>()[t], 0);
  }
}

TEST(Engine, CpuGreedyTokensEqualTheModelAloneForSeveralRequests) {
  for (bool async : {false, true}) {
    EngineConfig c = tiny_config();
    c.async_scheduling = async;
    LLMEngine e(c);
    const auto prompts = prompts_for(5, e.model().config().vocab_size, 11);
    const std::vector<SamplingParams> ps(prompts.size(), greedy(12));
    const auto outs = run_engine(e, prompts, ps);
    RuntimeLimits lim;
    lim.max_num_tokens = 64;
    lim.max_num_seqs = 1;
    lim.max_model_len = 128;
    lim.kv.num_blocks = 8;
    lim.kv.block_size = 16;
    LlamaModel ref = LlamaModel::from_preset("tiny", DType::f32, Device::cpu, 0, lim);
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_EQ(outs[i], reference_greedy(ref, prompts[i], 12)) << "request " << i << " async "
                                                                << async;
    EXPECT_EQ(e.metrics().generated_tokens, 5 * 12);
  }
}

TEST(Engine, PreemptionBySwapLosesNoKvData) {
  // A pool of 12 blocks of 16 tokens for 6 requests of up to 40 + 24 tokens: swaps must happen.
  const auto prompts = prompts_for(6, 512, 5, 20, 40);
  const std::vector<SamplingParams> ps(prompts.size(), greedy(24));
  EngineConfig big = tiny_config();
  big.async_scheduling = false;
  LLMEngine roomy(big);
  const auto want = run_engine(roomy, prompts, ps);
  EXPECT_EQ(roomy.scheduler().stats().num_preemptions, 0);
  for (bool async : {false, true}) {
    EngineConfig small = tiny_config();
    small.num_gpu_blocks = 12;
    small.num_cpu_blocks = 64;
    small.watermark = 0;
    small.async_scheduling = async;
    LLMEngine tight(small);
    const auto got = run_engine(tight, prompts, ps);
    EXPECT_GT(tight.scheduler().stats().num_swap_outs, 0) << "the pool should force swaps";
    EXPECT_EQ(got, want) << "async " << async;
    EXPECT_EQ(tight.block_manager().num_free_gpu_blocks(), 12);
  }
}

TEST(Engine, AsyncSchedulingMatchesSyncIncludingEosAndSampling) {
  EngineConfig c = tiny_config();
  c.async_scheduling = false;
  LLMEngine sync(c);
  const auto prompts = prompts_for(6, sync.model().config().vocab_size, 23);
  std::vector<SamplingParams> ps;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SamplingParams p = greedy(16);
    if (i % 2) {  // seeded random sampling: offsets must agree between the modes
      p.temperature = 0.8f;
      p.top_k = 20;
      p.top_p = 0.9f;
      p.seed = 1000 + static_cast<int64_t>(i);
    }
    ps.push_back(p);
  }
  // EOS = a token request 0 produces mid-way, so it stops early (async wastes a slot there).
  const auto first = run_engine(sync, prompts, ps);
  ps[0].eos_token_id = first[0][5];
  LLMEngine sync2(c);
  const auto want = run_engine(sync2, prompts, ps);
  EXPECT_LT(want[0].size(), 16u);
  c.async_scheduling = true;
  LLMEngine as(c);
  EXPECT_EQ(run_engine(as, prompts, ps), want);
  EXPECT_EQ(as.block_manager().num_free_gpu_blocks(), c.num_gpu_blocks);
  EXPECT_GE(as.scheduler().stats().num_discarded_samples, 1);
}

TEST(Engine, BadInputIsRefusedClearly) {
  EngineConfig c = tiny_config();
  c.preset = "nope";
  EXPECT_THROW(LLMEngine{c}, InvalidArgument);
  LLMEngine e(tiny_config());
  EXPECT_THROW(e.add_request(std::vector<int32_t>(200, 1), greedy(4)), InvalidArgument);
  EXPECT_THROW(e.add_request({1, 100000}, greedy(4)), InvalidArgument);
}

TEST(Engine, ASwapPoolBiggerThanTheHostIsRefusedWithTheNumbers) {
  // Before: the pinned swap pool was left out of the memory estimate; 10^9 blocks of llama-1b's
  // KV would be pinned (or die trying) after the model had loaded.
  EngineConfig c = tiny_config();
  c.preset = "llama-1b";
  c.num_cpu_blocks = 1000000000;
  try {
    LLMEngine e(c);
    ADD_FAILURE() << "a 10^9-block swap pool was accepted";
  } catch (const InvalidArgument& err) {
    EXPECT_NE(std::string(err.what()).find("--num-cpu-blocks 1000000000"), std::string::npos)
        << err.what();
    EXPECT_NE(std::string(err.what()).find("pinned host memory"), std::string::npos) << err.what();
  }
}

TEST(Engine, BlockSizeZeroIsRefusedBeforeAnythingDividesByIt) {
  // Before: the library path (no CLI check in front) divided by block_size while deriving the KV
  // block count (SIGFPE on the CPU backend's max_blocks_per_seq, garbage on CUDA's).
  for (int64_t bs : {0, -16, 7, 64}) {
    EngineConfig c = tiny_config();
    c.block_size = bs;
    try {
      LLMEngine e(c);
      ADD_FAILURE() << "block_size " << bs << " accepted";
    } catch (const InvalidArgument& err) {
      EXPECT_NE(std::string(err.what()).find("--block-size"), std::string::npos) << err.what();
      EXPECT_NE(std::string(err.what()).find("got " + std::to_string(bs)), std::string::npos)
          << err.what();
    }
  }
}

// Attention over a sequence's blocks is bit-identical after swap-out and swap-in to other blocks.
void swap_round_trip(Device device) {
  const int64_t H = 4, KV = 2, D = 64, bs = 16, nb = 8, ctx = 40;
  const Storage st = device == Device::cuda ? Storage::device : Storage::host;
  Rng rng(3);
  OwnedTensor kc({nb, KV, bs, D}, DType::f16, st), vc({nb, KV, bs, D}, DType::f16, st);
  OwnedTensor hk({nb, KV, bs, D}, DType::f16, Storage::host);
  OwnedTensor hv({nb, KV, bs, D}, DType::f16, Storage::host);
  rng.fill_normal(hk.view(), 0.0, 1.0);
  rng.fill_normal(hv.view(), 0.0, 1.0);
  copy_tensor(kc.view(), hk.view());
  copy_tensor(vc.view(), hv.view());
  OwnedTensor q({1, H, D}, DType::f16, Storage::host);
  rng.fill_normal(q.view(), 0.0, 1.0);
  const OwnedTensor qd = q.to(st);
  auto attend = [&](std::vector<int32_t> table) {
    OwnedTensor bt({1, 4}, DType::i32, Storage::host), si({1}, DType::i32, Storage::host),
        cl({1}, DType::i32, Storage::host);
    std::copy(table.begin(), table.end(), bt.ptr<int32_t>());
    si.ptr<int32_t>()[0] = 0;
    cl.ptr<int32_t>()[0] = ctx;
    const OwnedTensor btd = bt.to(st), sid = si.to(st), cld = cl.to(st);
    OwnedTensor out({1, H, D}, DType::f16, st);
    OwnedTensor ws({1 << 20}, DType::u8, st);
    paged_attention(out, qd, kc, vc, btd, sid, cld, 0.125, ctx,
                    device == Device::cuda ? ws.view() : Tensor(), PagedAttentionOptions{});
    return out.to(Storage::host);
  };
  const OwnedTensor before = attend({1, 3, 5, 0});
  const Storage pin = device == Device::cuda ? Storage::pinned : Storage::host;
  OwnedTensor ck({4, KV, bs, D}, DType::f16, pin), cv({4, KV, bs, D}, DType::f16, pin);
  OwnedTensor out_map({3, 2}, DType::i64, Storage::host), in_map({3, 2}, DType::i64, Storage::host);
  const int64_t om[] = {1, 0, 3, 1, 5, 2}, im[] = {0, 6, 1, 7, 2, 2};
  std::memcpy(out_map.data(), om, sizeof om);
  std::memcpy(in_map.data(), im, sizeof im);
  swap_blocks(kc, ck, out_map);
  swap_blocks(vc, cv, out_map);
  if (device == Device::cuda) DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  // Trash the old GPU blocks, then bring the sequence back into blocks 6, 7, 2.
  rng.fill_normal(hk.view(), 0.0, 1.0);
  copy_tensor(kc.view(), hk.view());
  swap_blocks(ck, kc, in_map);
  swap_blocks(cv, vc, in_map);
  if (device == Device::cuda) DAY18_CUDA_CHECK(cudaDeviceSynchronize());
  const OwnedTensor after = attend({6, 7, 2, 0});
  EXPECT_EQ(std::memcmp(before.data(), after.data(), before.nbytes()), 0);
}

TEST(SwapRoundTrip, AttentionIsBitIdenticalAfterSwapOutAndInCpu) { swap_round_trip(Device::cpu); }

TEST(SwapRoundTrip, AttentionIsBitIdenticalAfterSwapOutAndInGpu) {
  DAY18_REQUIRE_GPU();
  swap_round_trip(Device::cuda);
}

TEST(EngineGpu, CudaAndCpuBackendsGiveTheSameGreedyTokensOnTinyFp32) {
  DAY18_REQUIRE_GPU();
  const auto prompts = prompts_for(4, 512, 31);
  const std::vector<SamplingParams> ps(prompts.size(), greedy(32));
  LLMEngine cpu(tiny_config(Device::cpu));
  LLMEngine gpu(tiny_config(Device::cuda));
  EXPECT_EQ(run_engine(gpu, prompts, ps), run_engine(cpu, prompts, ps));
}

TEST(EngineGpu, CudaGraphReplayGivesTheSameTokensAsEager) {
  DAY18_REQUIRE_GPU();
  EngineConfig c = tiny_config(Device::cuda);
  c.dtype = DType::f16;
  c.max_num_seqs = 16;
  const auto prompts = prompts_for(11, 512, 41);
  const std::vector<SamplingParams> ps(prompts.size(), greedy(24));
  c.pad_decode = true;
  LLMEngine eager(c);
  const auto want = run_engine(eager, prompts, ps);
  c.cuda_graphs = true;
  LLMEngine graphs(c);
  EXPECT_EQ(run_engine(graphs, prompts, ps), want);
  EXPECT_GT(graphs.executor().num_graph_replays(), 16);
  EXPECT_EQ(eager.executor().num_graph_replays(), 0);
  std::cout << "[ graphs   ] " << graphs.executor().num_graphs() << " graphs, "
            << graphs.executor().num_graph_replays() << " replays\n";
}

TEST(EngineGpu, HostToDeviceOfStepNPlusOneOverlapsComputeOfStepN) {
  DAY18_REQUIRE_GPU();
  // Batch 32 decode on llama-1b shapes fp16 (random weights).
  EngineConfig c;
  c.preset = "llama-1b";
  c.dtype = DType::f16;
  c.device = Device::cuda;
  c.max_num_seqs = 32;
  c.max_num_batched_tokens = 2048;
  c.max_model_len = 512;
  c.num_gpu_blocks = 32 * 32 + 64;
  c.num_cpu_blocks = 0;
  LLMEngine e(c);
  for (int i = 0; i < 32; ++i) {
    SamplingParams p = greedy(40);
    p.ignore_eos = true;
    e.add_request(std::vector<int32_t>(48, 7 + i), p);
  }
  e.run_until_done();
  const auto& r = e.records();
  int overlapped = 0, checked = 0;
  double worst_gap_us = 0, step_ms = 0;
  std::vector<double> gaps_us;
  for (size_t i = 5; i + 1 < r.size(); ++i) {
    if (r[i].num_prefills > 0 || r[i + 1].num_prefills > 0) continue;
    ++checked;
    if (r[i + 1].h2d_start < r[i].compute_end) ++overlapped;
    gaps_us.push_back((r[i + 1].compute_start - r[i].compute_end) * 1e3);
    worst_gap_us = std::max(worst_gap_us, gaps_us.back());
    step_ms = r[i].compute_end - r[i].compute_start;
  }
  const EngineMetrics& m = e.metrics();
  std::cout << "[ overlap  ] " << overlapped << "/" << checked
            << " decode steps: H2D of N+1 began before compute of N ended; worst gap "
            << worst_gap_us << " us, step " << step_ms * 1e3 << " us; steady decode: median gap "
            << m.decode_gap_median_us << " us, busy " << m.gpu_busy_fraction << " over "
            << m.decode_steady_pairs << " pairs (whole run " << m.gpu_busy_fraction_all << ")\n";
  ASSERT_GT(checked, 20);
  EXPECT_GE(overlapped, checked * 9 / 10);
  // The typical gap between two decode steps' compute is small; one step may be held up by
  // whatever else the machine runs (ctest -j4 on the H200 once gave one 188 us gap in 30), so
  // the median is checked, and the worst is printed.
  std::sort(gaps_us.begin(), gaps_us.end());
  EXPECT_LT(gaps_us[gaps_us.size() / 2], std::max(50.0, 0.1 * step_ms * 1e3));
  // The engine's steady-state idle counts every pair checked here (no graphs, no swaps) and a few
  // earlier decode steps: more than half of its gaps are these, so its median is at most their
  // worst.
  EXPECT_GE(m.decode_steady_pairs, checked);
  EXPECT_LE(m.decode_gap_median_us, worst_gap_us + 1e-3);
  EXPECT_NEAR(m.gpu_busy_fraction, 1 - m.decode_idle_fraction, 1e-12);
}

}  // namespace
}  // namespace day18
