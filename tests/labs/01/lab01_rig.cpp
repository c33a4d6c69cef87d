// StepRig (lab01.h): the engine's parts by hand, and the CPU-backend reference.
#include <algorithm>

#include "engine/runtime/contiguous_batch.h"
#include "tests/labs/01/lab01.h"

namespace day18::lab01 {

StepRig::StepRig(int64_t num_cpu_blocks, int64_t max_model_len, int64_t max_num_tokens) {
  lim_.max_num_tokens = max_num_tokens;
  lim_.max_num_seqs = 8;
  lim_.max_model_len = max_model_len;
  lim_.kv.block_size = kBlockSize;
  lim_.kv.num_blocks = 8 * lim_.max_blocks_per_seq();
  gpu_ = std::make_unique<LlamaModel>(
      LlamaModel::from_preset("tiny", DType::f32, Device::cuda, /*seed=*/0, lim_));
  RuntimeLimits ref = lim_;  // one sequence at a time, recomputed from position 0
  ref.max_num_seqs = 1;
  ref.kv.num_blocks = ref.max_blocks_per_seq();
  cpu_ = std::make_unique<LlamaModel>(
      LlamaModel::from_preset("tiny", DType::f32, Device::cpu, /*seed=*/0, ref));
  bm_ = std::make_unique<BlockManager>(lim_.kv.num_blocks, num_cpu_blocks, kBlockSize,
                                       lim_.max_blocks_per_seq());
  input_ = std::make_unique<InputBatch>(lim_, Device::cuda);
  exec_ = std::make_unique<StepExecutor>(*gpu_, num_cpu_blocks, /*cuda_graphs=*/false);
}

StepRig::~StepRig() {
  (void)cudaDeviceSynchronize();
}

int64_t StepRig::vocab() const {
  return gpu_->config().vocab_size;
}

Sequence& StepRig::add(std::vector<int32_t> prompt) {
  Sequence& s = seqs_.emplace_back();
  s.id = static_cast<int64_t>(seqs_.size()) - 1;
  s.prompt = std::move(prompt);
  s.params.temperature = 0.f;  // greedy
  s.status = SeqStatus::running;
  bm_->allocate(s, s.prompt_len());
  return s;
}

std::vector<Sequence*> StepRig::add_random(int n, int len, uint64_t seed) {
  Rng rng(seed);
  std::vector<Sequence*> out;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> p(static_cast<size_t>(len));
    for (auto& t : p) t = static_cast<int32_t>(rng.randint(0, vocab() - 1));
    out.push_back(&add(std::move(p)));
  }
  return out;
}

SchedulerOutput StepRig::next_step(const std::vector<Sequence*>& seqs) {
  SchedulerOutput out;
  out.step = next_step_++;
  for (Sequence* s : seqs)  // prefills first, as the scheduler orders them
    if (s->output.empty()) out.seqs.push_back({s, s->len() - s->num_computed_tokens, true, true});
  out.num_prefills = static_cast<int64_t>(out.seqs.size());
  for (Sequence* s : seqs)
    if (!s->output.empty()) out.seqs.push_back({s, 1, false, true});
  for (const ScheduledSeq& e : out.seqs) {
    if (e.seq->status == SeqStatus::running) bm_->allocate(*e.seq, e.num_tokens);
    out.num_batched_tokens += e.num_tokens;
  }
  return out;
}

PreparedStep StepRig::prepare(const SchedulerOutput& out, int parity) {
  return input_->prepare(out, *bm_, parity, /*advanced=*/false, /*prev=*/nullptr);
}

void StepRig::submit(const SchedulerOutput& out, const PreparedStep& step) {
  exec_->submit(out, step, /*prev=*/nullptr, input_->staging(step.parity));
}

std::vector<int32_t> StepRig::wait(const PreparedStep& step, StepTimes* times) {
  return exec_->wait(step, times);
}

void StepRig::commit(const SchedulerOutput& out, const std::vector<int32_t>& tokens) {
  ASSERT_EQ(tokens.size(), out.seqs.size()) << "one sampled token per scheduled sequence";
  for (size_t i = 0; i < out.seqs.size(); ++i) {
    Sequence& s = *out.seqs[i].seq;
    s.num_computed_tokens += out.seqs[i].num_tokens;
    s.output.push_back(tokens[i]);
  }
}

std::vector<int32_t> StepRig::run_step(const std::vector<Sequence*>& seqs, int parity) {
  const SchedulerOutput out = next_step(seqs);
  const PreparedStep p = prepare(out, parity);
  submit(out, p);
  std::vector<int32_t> tokens = wait(p);
  commit(out, tokens);
  return tokens;
}

std::vector<int32_t> StepRig::reference_next(const std::vector<Sequence*>& seqs) {
  std::vector<int32_t> out;
  const RuntimeLimits& l = cpu_->limits();
  for (const Sequence* s : seqs) {
    std::vector<int32_t> tokens = s->prompt;
    tokens.insert(tokens.end(), s->output.begin(), s->output.end());
    ContiguousBatch b = make_contiguous_batch({{tokens, /*start_pos=*/0, /*seq_slot=*/0, false}},
                                              l.kv.block_size, l.max_blocks_per_seq(), Device::cpu);
    out.push_back(greedy_tokens(cpu_->forward(b.batch))[0]);
  }
  return out;
}

int32_t* StepRig::staged_tokens(const PreparedStep& step) const {
  return reinterpret_cast<int32_t*>(static_cast<char*>(input_->staging(step.parity)) +
                                    step.layout.token_ids);
}

}  // namespace day18::lab01
