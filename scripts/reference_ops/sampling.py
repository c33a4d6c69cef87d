"""PyTorch reference for the sampling op family: softmax, argmax, top_k_top_p_probs, sample.

Written from the op definitions with plain torch math, independently of the C++ code:
  softmax            softmax(logits / temperature) in fp32 (temperature 0: one-hot at the argmax)
  argmax             first index of the row maximum
  top_k_top_p_probs  torch.sort-based filter, as vLLM's _apply_top_k_top_p: ascending sort, mask
                     below the k-th largest, mask the prefix whose cumulative probability
                     <= 1 - p (the largest always stays); then softmax of the kept logits.
                     Tokens tied with the smallest kept logit are kept too (a sort orders ties
                     arbitrarily; the engine defines the kept set by a threshold).
  sample             Philox4x32-10 (Salmon et al., SC'11) in Python integers, u = (2*(x>>9)+1)/2^24,
                     token = argmax over the kept set of (logit - max)/T - log(-log(u)) in float64.
"""
from __future__ import annotations

import torch

from reference_ops.common import DTYPES, Case, generator

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32_10(ctr: list[int], k0: int, k1: int) -> list[int]:
    c0, c1, c2, c3 = ctr
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK, (p0 >> 32) ^ c3 ^ k1, p0 & MASK
    return [c0, c1, c2, c3]


def uniforms(seed: int, offset: int, vocab: int) -> torch.Tensor:
    seed &= (1 << 64) - 1
    offset &= (1 << 64) - 1
    u = []
    for g in range((vocab + 3) // 4):
        words = philox4x32_10([g, 0, offset & MASK, offset >> 32], seed & MASK, seed >> 32)
        u += [(2 * (w >> 9) + 1) / 16777216.0 for w in words]
    return torch.tensor(u[:vocab], dtype=torch.float64)


def softmax_ref(logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    x = logits.float()
    out = torch.empty_like(x)
    for r in range(x.shape[0]):
        t = float(temperature[r])
        if t == 0:
            out[r] = torch.nn.functional.one_hot(x[r].argmax(), x.shape[1]).float()
        else:
            out[r] = torch.softmax(x[r] / t, dim=-1)
    return out


def kept_mask(row: torch.Tensor, t: float, k: int, p: float) -> torch.Tensor:
    """Boolean mask of the tokens vLLM's top-k/top-p keep for one fp32 row (temperature t > 0)."""
    x = row / t
    srt, idx = torch.sort(x, descending=False)
    v = x.numel()
    mask = torch.zeros(v, dtype=torch.bool)
    if 0 < k < v:
        mask |= srt < srt[v - k]
    if p < 1:
        probs = torch.softmax(srt.masked_fill(mask, float("-inf")), dim=-1)
        cum = probs.cumsum(dim=-1)
        pmask = cum <= 1 - p
        pmask[-1] = False
        mask |= pmask
    smallest_kept = row[idx[~mask]].min()  # ties decided on the logits themselves
    return row >= smallest_kept


def top_k_top_p_ref(logits, temperature, top_k, top_p) -> torch.Tensor:
    x = logits.float()
    out = torch.zeros_like(x)
    for r in range(x.shape[0]):
        t = float(temperature[r])
        if t == 0:
            out[r, x[r].argmax()] = 1.0
            continue
        keep = kept_mask(x[r], t, int(top_k[r]), float(top_p[r]))
        out[r] = torch.softmax((x[r] / t).masked_fill(~keep, float("-inf")), dim=-1)
    return out


def sample_ref(logits, temperature, top_k, top_p, seeds, offsets) -> torch.Tensor:
    x = logits.float()
    tokens = torch.empty(x.shape[0], dtype=torch.int32)
    for r in range(x.shape[0]):
        t = float(temperature[r])
        if t == 0:
            tokens[r] = int(x[r].argmax())
            continue
        keep = kept_mask(x[r], t, int(top_k[r]), float(top_p[r]))
        row = x[r].double()
        u = uniforms(int(seeds[r]), int(offsets[r]), x.shape[1])
        key = (row - row.max()) / torch.tensor(t, dtype=torch.float32).double() - torch.log(-torch.log(u))
        key = key.masked_fill(~keep, float("-inf"))
        tokens[r] = int(key.argmax())  # first index of the maximum
    return tokens


def cases(device: str, seed: int):
    g = generator("cpu", seed)  # small shapes: computed on the CPU whatever --device says

    def logits(b, v, dt, scale=2.0):
        return (torch.randn(b, v, generator=g) * scale).to(DTYPES[dt])

    temps = torch.tensor([1.0, 0.0, 0.7, 1.5, 1.0, 0.9], dtype=torch.float32)
    ks = torch.tensor([0, 5, 10, 0, 1, 3], dtype=torch.int32)
    ps = torch.tensor([1.0, 0.9, 0.8, 0.6, 1.0, 0.95], dtype=torch.float32)
    for dt in DTYPES:
        x = logits(4, 37, dt)
        t = temps[:4].clone()
        yield Case(f"softmax_b4_v37_{dt}", "softmax", {"logits": x, "temperature": t}, {},
                   {"probs": softmax_ref(x, t)})

        x = logits(5, 29, dt)
        x[1, 3] = x[1, 20] = x[1].float().max() + 1  # tie: index 3 wins
        x[2, :7] = float("-inf")
        yield Case(f"argmax_b5_v29_{dt}", "argmax", {"logits": x}, {},
                   {"tokens": x.float().argmax(dim=-1).to(torch.int32)})

        x = logits(6, 40, dt)
        x[3, ::4] = float("-inf")  # masked tokens
        ins = {"logits": x, "temperature": temps.clone(), "top_k": ks.clone(), "top_p": ps.clone()}
        yield Case(f"top_k_top_p_probs_b6_v40_{dt}", "top_k_top_p_probs", ins, {},
                   {"probs": top_k_top_p_ref(x, temps, ks, ps)})

        x = logits(6, 50, dt)
        seeds = torch.tensor([1, 2**40 + 7, 123456789, 42, 5, 2**62], dtype=torch.int64)
        offsets = torch.tensor([0, 1, 17, 2**33 + 5, 9, 1000], dtype=torch.int64)
        ins = {"logits": x, "temperature": temps.clone(), "top_k": ks.clone(), "top_p": ps.clone(),
               "seeds": seeds, "offsets": offsets}
        yield Case(f"sample_b6_v50_{dt}", "sample", ins, {},
                   {"tokens": sample_ref(x, temps, ks, ps, seeds, offsets)})
