"""Shared pieces of the PyTorch reference implementations."""
from __future__ import annotations

import dataclasses

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclasses.dataclass
class Case:
    name: str                       # file name: <op>_<what>_<dtype>
    op: str                         # registry name, e.g. "rms_norm"
    inputs: dict[str, torch.Tensor]
    attrs: dict[str, object]
    outputs: dict[str, torch.Tensor]


def generator(device: str, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def randn(shape, dtype, device, gen, scale=1.0) -> torch.Tensor:
    """Normal random values made in fp32 and rounded once to `dtype` (never zeros)."""
    return (torch.randn(shape, generator=gen, device=device, dtype=torch.float32) * scale).to(dtype)
