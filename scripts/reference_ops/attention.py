"""PyTorch reference for the attention op family: paged_attention.

Plain torch, independent of the engine: gather each token's keys and values through the block
table, expand the KV heads to the query heads (GQA), softmax in fp32, weighted sum of V in fp32,
round once to the dtype. Inputs are rounded to the dtype first, as the engine sees them.

Layouts (see engine/ops/attention.h):
  query        [num_tokens, num_heads, head_size]
  key_cache    [num_blocks, num_kv_heads, block_size, head_size]   (value_cache the same)
  block_tables [num_seqs, max_blocks_per_seq] int32
  seq_idx      [num_tokens] int32   sequence (row of block_tables) of each query token
  context_lens [num_tokens] int32   keys each token attends to (prefill: position + 1)
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from .common import DTYPES, Case, generator, randn


def paged_attention_ref(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                        block_tables: torch.Tensor, seq_idx: torch.Tensor,
                        context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    num_tokens, num_heads, head_size = query.shape
    num_kv_heads, block_size = key_cache.shape[1], key_cache.shape[2]
    group = num_heads // num_kv_heads
    out = torch.empty_like(query)
    for t in range(num_tokens):
        s, n = int(seq_idx[t]), int(context_lens[t])
        if n == 0:  # padding token
            out[t] = 0
            continue
        blocks = block_tables[s, : (n + block_size - 1) // block_size].long()
        # [nb, kvh, bs, d] -> [kvh, nb * bs, d] -> first n keys
        k = key_cache[blocks].permute(1, 0, 2, 3).reshape(num_kv_heads, -1, head_size)[:, :n]
        v = value_cache[blocks].permute(1, 0, 2, 3).reshape(num_kv_heads, -1, head_size)[:, :n]
        k = k.float().repeat_interleave(group, dim=0)  # [num_heads, n, d]
        v = v.float().repeat_interleave(group, dim=0)
        q = query[t].float()                                       # [num_heads, d]
        logits = torch.einsum("hd,hnd->hn", q, k) * scale
        p = torch.softmax(logits, dim=-1)
        out[t] = torch.einsum("hn,hnd->hd", p, v).to(query.dtype)
    return out


def make_inputs(gen: torch.Generator, device: str, dtype: torch.dtype, seq_lens: list[int],
                num_heads: int, num_kv_heads: int, head_size: int, block_size: int,
                prefill: bool = False) -> dict[str, torch.Tensor]:
    """Random paged problem: physical blocks shuffled over the cache (block tables are not 0,1,2...)."""
    per_seq = [(n + block_size - 1) // block_size for n in seq_lens]
    max_blocks = max(per_seq)
    num_blocks = sum(per_seq) + 1
    perm = torch.randperm(num_blocks, generator=gen, device=device).to(torch.int32)
    block_tables = torch.randint(0, num_blocks, (len(seq_lens), max_blocks), generator=gen,
                                 device=device, dtype=torch.int32)
    nxt = 0
    for s, nb in enumerate(per_seq):
        block_tables[s, :nb] = perm[nxt:nxt + nb]
        nxt += nb
    if prefill:
        seq_idx = [s for s, n in enumerate(seq_lens) for _ in range(n)]
        context_lens = [p + 1 for n in seq_lens for p in range(n)]
    else:
        seq_idx, context_lens = list(range(len(seq_lens))), list(seq_lens)
    num_tokens = len(seq_idx)
    cache_shape = (num_blocks, num_kv_heads, block_size, head_size)
    return {
        "query": randn((num_tokens, num_heads, head_size), dtype, device, gen),
        "key_cache": randn(cache_shape, dtype, device, gen),
        "value_cache": randn(cache_shape, dtype, device, gen),
        "block_tables": block_tables,
        "seq_idx": torch.tensor(seq_idx, dtype=torch.int32, device=device),
        "context_lens": torch.tensor(context_lens, dtype=torch.int32, device=device),
    }


def cases(device: str, seed: int) -> Iterator[Case]:
    for i, (tag, dtype) in enumerate(DTYPES.items()):
        gen = generator(device, seed + 100 * i)

        def case(name: str, attrs: dict, **kw) -> Case:
            inputs = make_inputs(gen, device, dtype, **kw)
            out = paged_attention_ref(**inputs, scale=attrs["scale"])
            return Case(f"paged_attention_{name}_{tag}", "paged_attention", inputs, attrs,
                        {"out": out})

        # Decode, GQA ratio 4, three sequences (one shorter than a block), 16-token blocks.
        yield case("decode_gqa", {"scale": 1 / math.sqrt(64)}, seq_lens=[37, 5, 50],
                   num_heads=4, num_kv_heads=1, head_size=64, block_size=16)
        # Prefill: one token per prompt position, context_len = position + 1 (causal).
        yield case("prefill", {"scale": 1 / math.sqrt(64)}, seq_lens=[9, 5], num_heads=4,
                   num_kv_heads=2, head_size=64, block_size=8, prefill=True)
        # The largest head size, MHA, forced v1.
        yield case("head256", {"scale": 1 / math.sqrt(256), "version": "v1"}, seq_lens=[19, 3],
                   num_heads=2, num_kv_heads=1, head_size=256, block_size=8)
        # Across a partition boundary, forced v2 (fp32: 150 tokens over 64-token partitions,
        # kept small; half types: 600 tokens over the default 512).
        ctx, part = (150, 64) if dtype == torch.float32 else (600, 512)
        yield case("v2_partitions", {"scale": 1 / math.sqrt(64), "version": "v2",
                                     "partition_size": part}, seq_lens=[ctx], num_heads=2,
                   num_kv_heads=1, head_size=64, block_size=32)
        # The smallest and the non-power-of-two head sizes (32: 4 threads per key in fp16; 192:
        # a warp per key with 8 lanes idle). Appended after the cases above so that their random
        # inputs, drawn from the same generator, stay what they were. Decode: GQA 4 at head 32
        # (contexts 1, 17 = one block + 1, 40), MHA at head 192 over 16-token partitions of
        # 8-token blocks (forced v2). Prefill: one run of 17 (head 32) / 12 (head 192) tokens of
        # a sequence, which takes the tensor-core prefill kernel on the GPU for fp16/bf16 (more
        # than 8 tokens), and a short one beside it that takes the decode kernel.
        yield case("head32_gqa", {"scale": 1 / math.sqrt(32)}, seq_lens=[1, 17, 40], num_heads=8,
                   num_kv_heads=2, head_size=32, block_size=16)
        yield case("head32_prefill", {"scale": 1 / math.sqrt(32)}, seq_lens=[17, 4], num_heads=4,
                   num_kv_heads=1, head_size=32, block_size=16, prefill=True)
        yield case("head192_mha_v2", {"scale": 1 / math.sqrt(192), "version": "v2",
                                      "partition_size": 16}, seq_lens=[1, 17, 40], num_heads=2,
                   num_kv_heads=2, head_size=192, block_size=8)
        yield case("head192_prefill", {"scale": 1 / math.sqrt(192)}, seq_lens=[12, 3], num_heads=4,
                   num_kv_heads=2, head_size=192, block_size=32, prefill=True)
        # Every other compiled head size once (tests/engine/golden checks that each size of
        # cuda::kPagedAttentionHeadSizes has a case): GQA 4, a context of one block + 1 and one
        # shorter than a block.
        for hs in (80, 96, 112, 128):
            yield case(f"head{hs}", {"scale": 1 / math.sqrt(hs)}, seq_lens=[17, 3], num_heads=4,
                       num_kv_heads=1, head_size=hs, block_size=16)
