"""PyTorch reference for the linear op family: linear (out = x @ w.T, nn.Linear layout, no bias)
and linear_silu_mul (out = (silu(gate) * up) @ w.T, gate | up the halves of each input row).

Computed in float64 and rounded once to the dtype: independent of any GEMM library's
accumulation order, and immune to TF32 when regenerated on a GPU. Shapes: M = 1 (decode),
K not a multiple of 8, a tiny square one. Weights ~ N(0, 1/K) so outputs are O(1).
linear_silu_mul rounds the activation to the dtype first (as the engine's silu_and_mul writes
it), then multiplies in float64: M = 1 and 8 (the fused GEMV on CUDA) and 12 (silu_and_mul + GEMM).
rms_norm_linear: residual_out = input + residual rounded to the dtype, its RMSNorm in fp32 times
the norm weight rounded to the dtype (what fused_add_rms_norm writes), then the float64 product:
M = 1 (fused on CUDA) and 3.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .common import DTYPES, Case, generator, randn


def cases(device: str, seed: int):
    g = generator(device, seed)
    for tag, dt in DTYPES.items():
        for what, m, k, n in [("basic", 5, 128, 96), ("decode", 1, 256, 64),
                              ("oddk", 3, 77, 33), ("tiny", 2, 2, 3)]:
            x = randn((m, k), dt, device, g)
            w = randn((n, k), dt, device, g, scale=1.0 / math.sqrt(k))
            out = (x.double() @ w.double().T).to(dt)
            yield Case(f"linear_{what}_{tag}", "linear", {"input": x, "weight": w}, {},
                       {"out": out})
        for what, m, k, n in [("decode", 1, 512, 40), ("batch8", 8, 256, 24),
                              ("unfused", 12, 128, 16)]:
            gu = randn((m, 2 * k), dt, device, g, scale=2.0)
            w = randn((n, k), dt, device, g, scale=1.0 / math.sqrt(k))
            gate, up = gu.float().chunk(2, dim=-1)
            act = (F.silu(gate) * up).to(dt)
            out = (act.double() @ w.double().T).to(dt)
            yield Case(f"linear_silu_mul_{what}_{tag}", "linear_silu_mul",
                       {"gate_up": gu, "weight": w}, {}, {"out": out})
        for what, m, k, n in [("decode", 1, 512, 48), ("batch3", 3, 256, 20)]:
            x = randn((m, k), dt, device, g)
            r = randn((m, k), dt, device, g)
            nw = (1.0 + randn((k,), torch.float32, device, g, scale=0.1)).to(dt)
            w = randn((n, k), dt, device, g, scale=1.0 / math.sqrt(k))
            res = (x.float() + r.float()).to(dt)
            v = res.float()
            xn = (v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-5) * nw.float()).to(dt)
            out = (xn.double() @ w.double().T).to(dt)
            yield Case(f"rms_norm_linear_{what}_{tag}", "rms_norm_linear",
                       {"input": x, "residual": r, "norm_weight": nw, "weight": w},
                       {"eps": "1e-5"}, {"out": out, "residual_out": res})
