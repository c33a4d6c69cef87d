"""PyTorch reference for the linear op family: linear (out = x @ w.T, nn.Linear layout, no bias).

Computed in float64 and rounded once to the dtype: independent of any GEMM library's
accumulation order, and immune to TF32 when regenerated on a GPU. Shapes: M = 1 (decode),
K not a multiple of 8, a tiny square one. Weights ~ N(0, 1/K) so outputs are O(1).
"""
from __future__ import annotations

import math

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
