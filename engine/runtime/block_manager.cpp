#include "engine/runtime/block_manager.h"

#include <limits>

#include "engine/core/error.h"

namespace day18 {

namespace {

std::vector<int32_t> all_blocks_free(int64_t n) {
  std::vector<int32_t> stack(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) stack[i] = static_cast<int32_t>(n - 1 - i);  // 0 on top
  return stack;
}

}  // namespace

BlockManager::BlockManager(int64_t num_gpu_blocks, int64_t num_cpu_blocks, int64_t block_size,
                           int64_t max_blocks_per_seq)
    : block_size_(block_size), max_blocks_per_seq_(max_blocks_per_seq) {
  constexpr int64_t kMaxId = std::numeric_limits<int32_t>::max();  // block_tables are int32
  DAY18_REQUIRE(num_gpu_blocks >= 1 && num_gpu_blocks <= kMaxId,
                "num_gpu_blocks must be in [1, 2^31), got ", num_gpu_blocks);
  DAY18_REQUIRE(num_cpu_blocks >= 0 && num_cpu_blocks <= kMaxId,
                "num_cpu_blocks must be in [0, 2^31), got ", num_cpu_blocks);
  DAY18_REQUIRE(block_size >= 1, "block_size must be >= 1, got ", block_size);
  DAY18_REQUIRE(max_blocks_per_seq >= 1, "max_blocks_per_seq must be >= 1, got ",
                max_blocks_per_seq);
  free_gpu_ = all_blocks_free(num_gpu_blocks);
  free_cpu_ = all_blocks_free(num_cpu_blocks);
  gpu_owner_.assign(static_cast<size_t>(num_gpu_blocks), kFree);
  cpu_owner_.assign(static_cast<size_t>(num_cpu_blocks), kFree);
}

int64_t BlockManager::blocks_for_tokens(int64_t num_tokens) const {
  return num_tokens <= 0 ? 0 : (num_tokens + block_size_ - 1) / block_size_;
}

int64_t BlockManager::num_required_blocks(const Sequence& seq, int64_t num_new_tokens) const {
  const int64_t have = static_cast<int64_t>(seq.block_table.size());
  const int64_t need = blocks_for_tokens(seq.num_computed_tokens + num_new_tokens);
  return need > have ? need - have : 0;
}

bool BlockManager::can_ever_fit(int64_t num_tokens, int64_t reserved_blocks) const {
  const int64_t need = blocks_for_tokens(num_tokens);
  return need <= max_blocks_per_seq_ && need <= num_gpu_blocks() - reserved_blocks;
}

bool BlockManager::can_allocate(const Sequence& seq, int64_t num_new_tokens) const {
  if (seq.status == SeqStatus::swapped || num_new_tokens < 0) return false;
  const int64_t extra = num_required_blocks(seq, num_new_tokens);
  return static_cast<int64_t>(seq.block_table.size()) + extra <= max_blocks_per_seq_ &&
         extra <= num_free_gpu_blocks();
}

void BlockManager::allocate(Sequence& seq, int64_t num_new_tokens) {
  DAY18_REQUIRE(seq.status != SeqStatus::swapped, "allocate: sequence ", seq.id,
                " is swapped out; swap it in first");
  DAY18_REQUIRE(num_new_tokens >= 0, "allocate: num_new_tokens must be >= 0, got ", num_new_tokens,
                " (sequence ", seq.id, ")");
  const int64_t extra = num_required_blocks(seq, num_new_tokens);
  const int64_t total = static_cast<int64_t>(seq.block_table.size()) + extra;
  DAY18_REQUIRE(total <= max_blocks_per_seq_, "allocate: sequence ", seq.id, " would need ", total,
                " blocks for ", seq.num_computed_tokens + num_new_tokens,
                " tokens, more than max_blocks_per_seq ", max_blocks_per_seq_);
  DAY18_REQUIRE(extra <= num_free_gpu_blocks(), "allocate: sequence ", seq.id, " needs ", extra,
                " new GPU blocks but only ", num_free_gpu_blocks(),
                " are free (check can_allocate first)");
  for (int64_t i = 0; i < extra; ++i)
    seq.block_table.push_back(take(free_gpu_, gpu_owner_, seq.id));
}

int64_t BlockManager::slot(const Sequence& seq, int64_t position) const {
  DAY18_REQUIRE(seq.status != SeqStatus::swapped, "slot: sequence ", seq.id,
                " is swapped out (its block table holds CPU blocks)");
  const int64_t capacity = static_cast<int64_t>(seq.block_table.size()) * block_size_;
  DAY18_REQUIRE(position >= 0 && position < capacity, "slot: position ", position, " of sequence ",
                seq.id, " is outside its ", seq.block_table.size(), " blocks (", capacity,
                " slots)");
  return static_cast<int64_t>(seq.block_table[position / block_size_]) * block_size_ +
         position % block_size_;
}

void BlockManager::free(Sequence& seq) {
  if (seq.status == SeqStatus::swapped)
    give_back(seq.block_table, free_cpu_, cpu_owner_, seq.id, "CPU");
  else
    give_back(seq.block_table, free_gpu_, gpu_owner_, seq.id, "GPU");
  seq.block_table.clear();
}

bool BlockManager::can_swap_out(const Sequence& seq) const {
  return seq.status != SeqStatus::swapped &&
         static_cast<int64_t>(seq.block_table.size()) <= num_free_cpu_blocks();
}

std::vector<std::pair<int64_t, int64_t>> BlockManager::swap_out(Sequence& seq) {
  DAY18_REQUIRE(seq.status != SeqStatus::swapped, "swap_out: sequence ", seq.id,
                " is already swapped out");
  DAY18_REQUIRE(can_swap_out(seq), "swap_out: sequence ", seq.id, " has ", seq.block_table.size(),
                " blocks but the CPU swap pool has only ", num_free_cpu_blocks(),
                " free (check can_swap_out first)");
  auto mapping = relocate(seq, free_gpu_, gpu_owner_, "GPU", free_cpu_, cpu_owner_);
  seq.status = SeqStatus::swapped;
  return mapping;
}

bool BlockManager::can_swap_in(const Sequence& seq) const {
  return seq.status == SeqStatus::swapped &&
         static_cast<int64_t>(seq.block_table.size()) <= num_free_gpu_blocks();
}

std::vector<std::pair<int64_t, int64_t>> BlockManager::swap_in(Sequence& seq) {
  DAY18_REQUIRE(seq.status == SeqStatus::swapped, "swap_in: sequence ", seq.id,
                " is not swapped out (status ", to_string(seq.status), ")");
  DAY18_REQUIRE(can_swap_in(seq), "swap_in: sequence ", seq.id, " has ", seq.block_table.size(),
                " blocks but only ", num_free_gpu_blocks(),
                " GPU blocks are free (check can_swap_in first)");
  auto mapping = relocate(seq, free_cpu_, cpu_owner_, "CPU", free_gpu_, gpu_owner_);
  seq.status = SeqStatus::running;
  return mapping;
}

int64_t BlockManager::gpu_block_owner(int64_t block) const {
  DAY18_REQUIRE(block >= 0 && block < num_gpu_blocks(), "gpu block ", block, " out of range [0, ",
                num_gpu_blocks(), ")");
  return gpu_owner_[block];
}

int64_t BlockManager::cpu_block_owner(int64_t block) const {
  DAY18_REQUIRE(block >= 0 && block < num_cpu_blocks(), "cpu block ", block, " out of range [0, ",
                num_cpu_blocks(), ")");
  return cpu_owner_[block];
}

std::vector<std::pair<int64_t, int64_t>> BlockManager::relocate(
    Sequence& seq, std::vector<int32_t>& from_free, std::vector<int64_t>& from_owner,
    const char* from_name, std::vector<int32_t>& to_free, std::vector<int64_t>& to_owner) {
  // One block in the destination pool for each block of the table, (from, to) pairs in table
  // order; then the source blocks go back to their pool and the table names the new ones.
  std::vector<std::pair<int64_t, int64_t>> mapping;
  mapping.reserve(seq.block_table.size());
  std::vector<int32_t> new_table;
  new_table.reserve(seq.block_table.size());
  for (int32_t from : seq.block_table) {
    const int32_t to = take(to_free, to_owner, seq.id);
    mapping.emplace_back(from, to);
    new_table.push_back(to);
  }
  give_back(seq.block_table, from_free, from_owner, seq.id, from_name);
  seq.block_table = std::move(new_table);
  return mapping;
}

int32_t BlockManager::take(std::vector<int32_t>& free_list, std::vector<int64_t>& owner_of,
                           int64_t owner) {
  const int32_t b = free_list.back();
  free_list.pop_back();
  owner_of[b] = owner;
  return b;
}

void BlockManager::give_back(const std::vector<int32_t>& table, std::vector<int32_t>& free_list,
                             std::vector<int64_t>& owner_of, int64_t seq_id, const char* pool) {
  // Check the whole table before changing anything, so a bad table leaves the pool intact.
  for (int32_t b : table) {
    const bool in_range = b >= 0 && b < static_cast<int64_t>(owner_of.size());
    if (!in_range || owner_of[b] != seq_id)
      throw Error(detail::concat("block manager: sequence ", seq_id, " frees ", pool, " block ", b,
                                 " which it does not own (owner ", in_range ? owner_of[b] : kFree,
                                 "): a double free or a stale block table"));
  }
  for (int32_t b : table) {
    owner_of[b] = kFree;
    free_list.push_back(b);
  }
}

}  // namespace day18
