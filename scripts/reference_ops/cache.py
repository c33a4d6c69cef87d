"""PyTorch reference for the KV-cache op family: reshape_and_cache, copy_blocks, swap_blocks.

Written with plain torch indexing, independently of the engine's code. The caches start from
random contents (not zeros), so the golden output also checks that untouched slots and blocks
keep their bytes. Layout: cache [num_blocks, num_kv_heads, block_size, head_size].
"""
from __future__ import annotations

from typing import Iterator

import torch

from .common import DTYPES, Case, generator, randn


def _perm(n: int, gen: torch.Generator, device: str) -> torch.Tensor:
    return torch.randperm(n, generator=gen, device=device)


def reshape_and_cache_case(name: str, dtype: torch.dtype, device: str, gen: torch.Generator,
                           tokens: int, heads: int, head_size: int, block_size: int,
                           blocks: int) -> Case:
    key = randn((tokens, heads, head_size), dtype, device, gen)
    value = randn((tokens, heads, head_size), dtype, device, gen)
    key_cache = randn((blocks, heads, block_size, head_size), dtype, device, gen)
    value_cache = randn((blocks, heads, block_size, head_size), dtype, device, gen)
    num_slots = blocks * block_size
    slots = _perm(num_slots - 1, gen, device)[:tokens].to(torch.int64)
    slots[0] = num_slots - 1            # the last slot of the last block
    slots[3::4] = -1                    # padding tokens: skipped
    out_k, out_v = key_cache.clone(), value_cache.clone()
    valid = slots >= 0
    s = slots[valid]
    out_k[s // block_size, :, s % block_size, :] = key[valid]
    out_v[s // block_size, :, s % block_size, :] = value[valid]
    return Case(name, "reshape_and_cache",
                {"key": key, "value": value, "key_cache": key_cache, "value_cache": value_cache,
                 "slot_mapping": slots},
                {"check_slots": "true"},
                {"key_cache": out_k, "value_cache": out_v})


def copy_blocks_case(name: str, dtype: torch.dtype, device: str, gen: torch.Generator,
                     layers: int, blocks: int, heads: int, block_size: int, head_size: int,
                     pairs: int) -> Case:
    shape = (layers, blocks, heads, block_size, head_size)
    kc, vc = randn(shape, dtype, device, gen), randn(shape, dtype, device, gen)
    ids = _perm(blocks, gen, device)[:2 * pairs]
    mapping = torch.stack([ids[:pairs], ids[pairs:]], dim=1).to(torch.int64)  # src, dst disjoint
    out_k, out_v = kc.clone(), vc.clone()
    out_k[:, mapping[:, 1]] = kc[:, mapping[:, 0]]
    out_v[:, mapping[:, 1]] = vc[:, mapping[:, 0]]
    return Case(name, "copy_blocks",
                {"key_caches": kc, "value_caches": vc, "block_mapping": mapping},
                {"check_blocks": "true"},
                {"key_caches": out_k, "value_caches": out_v})


def swap_blocks_case(name: str, dtype: torch.dtype, device: str, gen: torch.Generator,
                     direction: str, src_blocks: int, dst_blocks: int, pairs: int) -> Case:
    src = randn((src_blocks, 2, 8, 16), dtype, device, gen)
    dst = randn((dst_blocks, 2, 8, 16), dtype, device, gen)
    mapping = torch.stack([_perm(src_blocks, gen, device)[:pairs],
                           _perm(dst_blocks, gen, device)[:pairs]], dim=1).to(torch.int64)
    out = dst.clone()
    out[mapping[:, 1]] = src[mapping[:, 0]]
    return Case(name, "swap_blocks", {"src": src, "dst": dst, "block_mapping": mapping},
                {"direction": direction}, {"dst": out})


def cases(device: str, seed: int) -> Iterator[Case]:
    gen = generator(device, seed)
    for tag, dt in DTYPES.items():
        for bs in (8, 16, 32):
            yield reshape_and_cache_case(f"reshape_and_cache_bs{bs}_{tag}", dt, device, gen,
                                         tokens=13, heads=2, head_size=16, block_size=bs,
                                         blocks=3)
        yield reshape_and_cache_case(f"reshape_and_cache_oddhead_{tag}", dt, device, gen,
                                     tokens=5, heads=3, head_size=36, block_size=8, blocks=2)
        yield copy_blocks_case(f"copy_blocks_3layers_{tag}", dt, device, gen, layers=3,
                               blocks=8, heads=2, block_size=8, head_size=16, pairs=3)
        yield swap_blocks_case(f"swap_blocks_out_{tag}", dt, device, gen, "out", 6, 10, 4)
        yield swap_blocks_case(f"swap_blocks_in_{tag}", dt, device, gen, "in", 10, 6, 4)
