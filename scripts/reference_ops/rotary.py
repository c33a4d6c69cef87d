"""PyTorch reference for the rotary family: rotary_embedding (RoPE) and rotary_and_cache.

cos/sin come from rope_theta: inv_freq_i = theta^(-2i/rot_dim), angle = position * inv_freq.
The op receives them as a [max_position, rot_dim] table (cos | sin) in the activations' dtype,
so the reference rotates with those rounded values, in fp32:
    neox: x' = x * cos_cat + rotate_half(x) * sin_cat         (pairs i, i + rot_dim/2)
    gptj: x' = x * cos_rep + rotate_every_two(x) * sin_rep    (pairs 2i, 2i+1)
Only the first rot_dim dims of each head rotate; the rest are copied through.

rotary_and_cache = the same rope on query (written to query_out) and on key, then the rotated key
and the value stored at their slot of the paged caches [num_blocks, num_kv_heads, block_size,
head_size] by plain indexing (slot = block * block_size + offset, -1 = skip). The caches start
from random contents, so the golden output also checks that the other slots keep their bytes.
"""
from __future__ import annotations

from typing import Iterator

import torch

from .common import DTYPES, Case, generator, randn


def cos_sin_cache(max_position: int, rot_dim: int, theta: float, dtype: torch.dtype,
                  device: str) -> torch.Tensor:
    inv_freq = 1.0 / (theta ** (torch.arange(0, rot_dim, 2, dtype=torch.float64, device=device)
                                / rot_dim))
    angles = torch.outer(torch.arange(max_position, dtype=torch.float64, device=device), inv_freq)
    return torch.cat([angles.cos(), angles.sin()], dim=-1).to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def rotate_every_two(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([-x2, x1], dim=-1).flatten(-2)


def rope(x: torch.Tensor, positions: torch.Tensor, table: torch.Tensor, neox: bool) -> torch.Tensor:
    rot_dim = table.shape[1]
    cos, sin = table[positions].float().chunk(2, dim=-1)  # [tokens, rot_dim/2] each
    if neox:
        cos, sin = torch.cat([cos, cos], -1), torch.cat([sin, sin], -1)
        turn = rotate_half
    else:
        cos, sin = cos.repeat_interleave(2, -1), sin.repeat_interleave(2, -1)
        turn = rotate_every_two
    xr = x[..., :rot_dim].float()
    rotated = xr * cos[:, None, :] + turn(xr) * sin[:, None, :]
    return torch.cat([rotated.to(x.dtype), x[..., rot_dim:]], dim=-1)


def rope_case(name: str, dtype: torch.dtype, device: str, gen: torch.Generator, tokens: int,
              heads: int, kv_heads: int, head_size: int, rot_dim: int, neox: bool,
              max_position: int = 64, theta: float = 10000.0) -> Case:
    table = cos_sin_cache(max_position, rot_dim, theta, dtype, device)
    positions = torch.randint(0, max_position, (tokens,), generator=gen, device=device)
    positions[-1] = max_position - 1
    query = randn((tokens, heads, head_size), dtype, device, gen)
    key = randn((tokens, kv_heads, head_size), dtype, device, gen)
    return Case(name, "rotary_embedding",
                {"positions": positions, "query": query, "key": key, "cos_sin_cache": table},
                {"head_size": head_size, "is_neox": "true" if neox else "false",
                 "check_positions": "true", "rope_theta": theta},
                {"query": rope(query, positions, table, neox), "key": rope(key, positions, table, neox)})


def rotary_and_cache_case(name: str, dtype: torch.dtype, device: str, gen: torch.Generator,
                          tokens: int, heads: int, kv_heads: int, head_size: int, rot_dim: int,
                          neox: bool, block_size: int, blocks: int, max_position: int = 64,
                          theta: float = 10000.0) -> Case:
    table = cos_sin_cache(max_position, rot_dim, theta, dtype, device)
    positions = torch.randint(0, max_position, (tokens,), generator=gen, device=device)
    positions[-1] = max_position - 1
    query = randn((tokens, heads, head_size), dtype, device, gen)
    key = randn((tokens, kv_heads, head_size), dtype, device, gen)
    value = randn((tokens, kv_heads, head_size), dtype, device, gen)
    key_cache = randn((blocks, kv_heads, block_size, head_size), dtype, device, gen)
    value_cache = randn((blocks, kv_heads, block_size, head_size), dtype, device, gen)
    num_slots = blocks * block_size
    slots = torch.randperm(num_slots - 1, generator=gen, device=device)[:tokens].to(torch.int64)
    slots[0] = num_slots - 1                # the last slot of the last block
    slots[2::3] = -1                        # padding tokens: not cached
    out_k, out_v = key_cache.clone(), value_cache.clone()
    valid = slots >= 0
    s = slots[valid]
    out_k[s // block_size, :, s % block_size, :] = rope(key, positions, table, neox)[valid]
    out_v[s // block_size, :, s % block_size, :] = value[valid]
    return Case(name, "rotary_and_cache",
                {"positions": positions, "query": query, "key": key, "value": value,
                 "cos_sin_cache": table, "key_cache": key_cache, "value_cache": value_cache,
                 "slot_mapping": slots},
                {"head_size": head_size, "is_neox": "true" if neox else "false",
                 "check_positions": "true", "check_slots": "true", "rope_theta": theta},
                {"query_out": rope(query, positions, table, neox), "key_cache": out_k,
                 "value_cache": out_v})


def cases(device: str, seed: int) -> Iterator[Case]:
    gen = generator(device, seed)
    for tag, dt in DTYPES.items():
        for neox in (True, False):
            style = "neox" if neox else "gptj"
            yield rope_case(f"rotary_embedding_{style}_gqa_{tag}", dt, device, gen, tokens=7,
                            heads=4, kv_heads=2, head_size=64, rot_dim=64, neox=neox)
            yield rope_case(f"rotary_embedding_{style}_partial_{tag}", dt, device, gen, tokens=5,
                            heads=2, kv_heads=1, head_size=48, rot_dim=16, neox=neox)
        yield rope_case(f"rotary_embedding_neox_single_token_{tag}", dt, device, gen, tokens=1,
                        heads=8, kv_heads=8, head_size=128, rot_dim=128, neox=True)
    # rotary_and_cache: after the rotary_embedding cases, so that their random streams (and
    # files) stay as they were.
    for tag, dt in DTYPES.items():
        for neox in (True, False):
            style = "neox" if neox else "gptj"
            yield rotary_and_cache_case(f"rotary_and_cache_{style}_gqa_{tag}", dt, device, gen,
                                        tokens=7, heads=4, kv_heads=2, head_size=64, rot_dim=64,
                                        neox=neox, block_size=8, blocks=2)
            yield rotary_and_cache_case(f"rotary_and_cache_{style}_partial_{tag}", dt, device, gen,
                                        tokens=5, heads=2, kv_heads=1, head_size=48, rot_dim=16,
                                        neox=neox, block_size=4, blocks=3)
        yield rotary_and_cache_case(f"rotary_and_cache_neox_single_token_{tag}", dt, device, gen,
                                    tokens=1, heads=4, kv_heads=2, head_size=128, rot_dim=128,
                                    neox=True, block_size=4, blocks=2)
