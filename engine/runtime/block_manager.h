// The paged KV cache's bookkeeping (vLLM's block manager), CPU-only: which physical blocks are
// free, which sequence owns which block, and the copies a swap needs. It moves no data: the
// executor runs swap_blocks on the cache stream with the (src, dst) pairs that swap_out/swap_in
// return, and the attention kernels read the block tables.
//
//   GPU pool: num_gpu_blocks blocks of block_size token slots (the KV cache tensors
//             [num_blocks, num_kv_heads, block_size, head_size] on the GPU).
//   CPU pool: num_cpu_blocks blocks in pinned host memory, where preempted sequences are parked.
//
// A sequence's block_table lists its blocks in position order; slot(seq, p) is the flat slot of
// position p in the cache: block_table[p / block_size] * block_size + p % block_size, which is
// what slot_mapping [num_tokens] carries to reshape_and_cache. Blocks are allocated on demand:
// a decode step needs a new block only when the sequence crosses a block boundary.
//
// The block table's meaning follows seq.status: GPU ids unless the sequence is swapped (CPU ids).
// swap_out sets status = swapped and swap_in sets status = running; everything else about the
// status belongs to the scheduler. Every block remembers its owner, so a table that names a block
// the sequence does not own (a double free, a stale copy of a table) is caught, not corrupted.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/runtime/sequence.h"

namespace day18 {

class BlockManager {
 public:
  // Throws InvalidArgument unless num_gpu_blocks >= 1, num_cpu_blocks >= 0, block_size >= 1,
  // max_blocks_per_seq >= 1 (the width of the block_tables tensor).
  BlockManager(int64_t num_gpu_blocks, int64_t num_cpu_blocks, int64_t block_size,
               int64_t max_blocks_per_seq);

  // Blocks needed for `num_tokens` positions: ceil(num_tokens / block_size).
  int64_t blocks_for_tokens(int64_t num_tokens) const;
  // New GPU blocks that allocate(seq, num_new_tokens) would take (0 if the last block has room).
  int64_t num_required_blocks(const Sequence& seq, int64_t num_new_tokens) const;
  // Whether a sequence of `num_tokens` positions fits at all: within max_blocks_per_seq and the
  // GPU pool less `reserved_blocks` (the scheduler's watermark). Says nothing about free blocks.
  bool can_ever_fit(int64_t num_tokens, int64_t reserved_blocks = 0) const;

  // Whether the GPU pool has the blocks for positions [num_computed_tokens,
  // num_computed_tokens + num_new_tokens) of a (non-swapped) sequence. False also when the
  // sequence would outgrow max_blocks_per_seq (allocate then throws; the scheduler rejects such a
  // request at add_request).
  bool can_allocate(const Sequence& seq, int64_t num_new_tokens) const;
  // Appends GPU blocks to seq.block_table until it covers num_computed_tokens + num_new_tokens
  // positions. Throws InvalidArgument naming the sequence when it is swapped, would exceed
  // max_blocks_per_seq, or the pool lacks the blocks (check can_allocate first).
  void allocate(Sequence& seq, int64_t num_new_tokens);

  // Flat cache slot of `position`; throws InvalidArgument if the sequence is swapped or the
  // position is outside its block table.
  int64_t slot(const Sequence& seq, int64_t position) const;

  // Returns the sequence's blocks to their pool (CPU if swapped, else GPU) and clears its table.
  void free(Sequence& seq);

  // Swap-out: every GPU block of the sequence gets a CPU block; returns the (gpu, cpu) pairs to
  // copy, frees the GPU blocks, and leaves the CPU ids in the table (status = swapped). The GPU
  // blocks may be handed to other sequences in the same step: the copies must run before that
  // step's compute writes the cache.
  bool can_swap_out(const Sequence& seq) const;
  std::vector<std::pair<int64_t, int64_t>> swap_out(Sequence& seq);
  // Swap-in: the reverse; returns the (cpu, gpu) pairs and sets status = running. can_swap_in
  // checks the table's blocks only; new tokens need can_allocate afterwards.
  bool can_swap_in(const Sequence& seq) const;
  std::vector<std::pair<int64_t, int64_t>> swap_in(Sequence& seq);

  int64_t num_free_gpu_blocks() const { return static_cast<int64_t>(free_gpu_.size()); }
  int64_t num_free_cpu_blocks() const { return static_cast<int64_t>(free_cpu_.size()); }
  int64_t num_gpu_blocks() const { return static_cast<int64_t>(gpu_owner_.size()); }
  int64_t num_cpu_blocks() const { return static_cast<int64_t>(cpu_owner_.size()); }
  int64_t block_size() const { return block_size_; }
  int64_t max_blocks_per_seq() const { return max_blocks_per_seq_; }
  // Sequence id owning a block, or -1 if free (for tests and debugging).
  int64_t gpu_block_owner(int64_t block) const;
  int64_t cpu_block_owner(int64_t block) const;

 private:
  // Moves every block of seq's table into the other pool (swap_out: GPU -> CPU, swap_in: back);
  // returns the (from, to) block pairs the copy must move.
  static std::vector<std::pair<int64_t, int64_t>> relocate(
      Sequence& seq, std::vector<int32_t>& from_free, std::vector<int64_t>& from_owner,
      const char* from_name, std::vector<int32_t>& to_free, std::vector<int64_t>& to_owner);
  static constexpr int64_t kFree = -1;
  // Takes a block from `free_list`, marks it owned by `owner`.
  static int32_t take(std::vector<int32_t>& free_list, std::vector<int64_t>& owner_of,
                      int64_t owner);
  // Returns every block of `table` to the pool after checking `seq_id` owns it.
  static void give_back(const std::vector<int32_t>& table, std::vector<int32_t>& free_list,
                        std::vector<int64_t>& owner_of, int64_t seq_id, const char* pool);

  int64_t block_size_;
  int64_t max_blocks_per_seq_;
  // Free lists are stacks: the most recently freed block is reused first. Initially block 0 is
  // on top, so a fresh pool hands out 0, 1, 2, ... (easy to follow in a test or a trace).
  std::vector<int32_t> free_gpu_, free_cpu_;
  std::vector<int64_t> gpu_owner_, cpu_owner_;  // owner sequence id per block, kFree if free
};

}  // namespace day18
