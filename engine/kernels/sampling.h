// Sampling: the last op of a decode step, turning each sequence's logits into its next token, as
// vLLM's Sampler does it: temperature -> softmax -> top-k -> top-p -> random draw; greedy rows
// (temperature 0) take the argmax.
//
// Per-row parameters (one entry per sequence of the batch, all on the logits' device):
//   temperature [batch] f32    0 = greedy (argmax, ties -> lowest index); > 0 divides the logits
//   top_k       [batch] i32    keep the k largest logits (ties at the k-th value are all kept);
//                              0 or >= vocab = off
//   top_p       [batch] f32    in (0, 1]: keep the smallest set of largest tokens whose mass (of
//                              the top-k-renormalised distribution) reaches top_p; 1 = off
//   seeds       [batch] i64    the sequence's seed
//   offsets     [batch] i64    the sequence's step counter: each decode step uses a new offset, so
//                              it draws fresh but reproducible random numbers
// Token ids are int32 (vocabularies are far below 2^31; vLLM's sampled_token_ids are int32 too).
//
// The draw is exact and identical on CPU and GPU (engine/cpu/sampling.h): Philox4x32-10 keyed by
// (seed, offset) gives a uniform u_i per vocab position (engine/kernels/philox.h), and the token
// is the Gumbel-max  argmax over kept i of  (logit_i - max) / T - log(-log(u_i)).
// See sampling.cu for why that samples the renormalised distribution without a prefix scan.
//
// Non-finite logits (the same on both backends, tested in tests/engine/kernels/test_sampling*):
//   -inf   a mask: the token is never kept nor sampled. A row of only -inf has nothing to sample
//          and takes the greedy rule (its first index, 0), as a row of equal logits would.
//   NaN or +inf anywhere in a row: the row has no distribution (softmax of it is undefined; in a
//          model it means the forward pass overflowed or the weights hold NaN). argmax and sample
//          write token -1 for that row, an id no vocabulary has; softmax and top_k_top_p_probs
//          write NaN over the whole row. Nothing is guessed: the caller sees the failure. The
//          check is one compare per logit inside the pass that finds the row's max, so it costs
//          no extra read and no synchronization. Callers that use the tokens check them: the
//          engine's Scheduler::process_outputs throws naming the request, feed_sampled_tokens
//          (runtime/pipeline_kernels.h) never lets -1 index the embedding, `day18 generate`
//          names the step.
//
// Launchers validate nothing (engine/ops/sampling.h does); they take the stream last.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/core/tensor.h"

namespace day18::cuda {

// probs = softmax(logits / temperature) per row; a row with temperature 0 gets the limit of that
// softmax, a one-hot at its argmax.
void softmax(const Tensor& probs,        // [batch, vocab] f32
             const Tensor& logits,       // [batch, vocab] f32/f16/bf16
             const Tensor& temperature,  // [batch] f32
             cudaStream_t stream);

// Greedy decoding: index of each row's largest logit, ties -> lowest index.
void argmax(const Tensor& tokens,  // [batch] i32
            const Tensor& logits,  // [batch, vocab] f32/f16/bf16
            cudaStream_t stream);

// The distribution `sample` draws from: softmax(logits / T) restricted to the top-k / top-p kept
// set and renormalised; zeros elsewhere. Greedy rows: one-hot at the argmax.
void top_k_top_p_probs(const Tensor& probs,        // [batch, vocab] f32
                       const Tensor& logits,       // [batch, vocab] f32/f16/bf16
                       const Tensor& temperature,  // [batch] f32
                       const Tensor& top_k,        // [batch] i32
                       const Tensor& top_p,        // [batch] f32
                       cudaStream_t stream);

// One sampled token per row.
// blocks_per_row: 0 = the launcher's rule (a cluster of kSamplerClusterBlocks blocks per row when
// batch <= SMs / 32 and the GPU has clusters, else one block per row); 1 or
// kSamplerClusterBlocks forces one (the benchmarks compare them). Same tokens either way.
inline constexpr int kSamplerClusterBlocks = 8;
void sample(const Tensor& tokens,       // [batch] i32
            const Tensor& logits,       // [batch, vocab] f32/f16/bf16
            const Tensor& temperature,  // [batch] f32
            const Tensor& top_k,        // [batch] i32
            const Tensor& top_p,        // [batch] f32
            const Tensor& seeds,        // [batch] i64
            const Tensor& offsets,      // [batch] i64
            cudaStream_t stream, int blocks_per_row = 0);

// Instrumentation for the lesson "count the passes over the logits": every full pass that a
// sample / top_k_top_p_probs block makes over its row of logits adds one to a device counter.
// Returns the count since the last call and resets it (synchronizes the device).
uint64_t sampling_row_passes_read_and_reset();

}  // namespace day18::cuda
