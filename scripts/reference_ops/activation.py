"""PyTorch reference for the activation op family: silu_and_mul.

input = [gate | up] per token; out = F.silu(gate) * up, in fp32, rounded once to the dtype.
Shapes reach the vector path (d % 8 == 0) and the scalar path (d = 77, 1000 is % 8 but 1001
is not), and gates wide enough to cover silu's tails.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import DTYPES, Case, generator, randn


def cases(device: str, seed: int):
    g = generator(device, seed)
    for tag, dt in DTYPES.items():
        for what, tokens, d in [("basic", 4, 64), ("odd", 3, 77), ("wide", 1, 1001),
                                ("one", 2, 1)]:
            x = randn((tokens, 2 * d), dt, device, g, scale=3.0)
            gate, up = x.float()[:, :d], x.float()[:, d:]
            yield Case(f"silu_and_mul_{what}_{tag}", "silu_and_mul", {"input": x}, {},
                       {"out": (F.silu(gate) * up).to(dt)})
