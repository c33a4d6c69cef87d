"""PyTorch reference for the layernorm op family: rms_norm and fused_add_rms_norm.

Plain math in fp32 (inputs upcast), rounded once to the dtype, as the engine defines the ops:
    rms_norm:            out = x * rsqrt(mean(x^2) + eps) * w
    fused_add_rms_norm:  residual = (x + r) rounded to the dtype; input = rms_norm(residual) * w
Shapes are small but reach every kernel version: vector path (hidden % 8 == 0), scalar path
(hidden 77, 1000), a large hidden (8192), tiny inputs where eps matters.
"""
from __future__ import annotations

import torch

from .common import DTYPES, Case, generator, randn


def rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w.float()


def cases(device: str, seed: int):
    g = generator(device, seed)
    for tag, dt in DTYPES.items():
        shapes = [("basic", 4, 128, 1e-6, 1.0), ("odd", 3, 77, 1e-5, 1.0),
                  ("eps", 2, 64, 1e-2, 1e-3)]
        if dt != torch.float32:
            shapes.append(("large", 1, 8192, 1e-6, 1.0))
        for what, tokens, hidden, eps, scale in shapes:
            x = randn((tokens, hidden), dt, device, g, scale)
            w = (1.0 + 0.5 * randn((hidden,), torch.float32, device, g)).to(dt)
            yield Case(f"rms_norm_{what}_{tag}", "rms_norm", {"input": x, "weight": w},
                       {"eps": eps}, {"out": rms(x, w, eps).to(dt)})

        for what, tokens, hidden in [("basic", 4, 128), ("odd", 3, 1000)]:
            x = randn((tokens, hidden), dt, device, g)
            r = randn((tokens, hidden), dt, device, g)
            w = (1.0 + 0.5 * randn((hidden,), torch.float32, device, g)).to(dt)
            eps = 1e-6
            new_r = (x.float() + r.float()).to(dt)
            yield Case(f"fused_add_rms_norm_{what}_{tag}", "fused_add_rms_norm",
                       {"input": x, "residual": r, "weight": w}, {"eps": eps},
                       {"input": rms(new_r, w, eps).to(dt), "residual": new_r})
