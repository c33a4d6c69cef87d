"""PyTorch reference for the layernorm op family (placeholder: no cases yet)."""
from __future__ import annotations


def cases(device: str, seed: int):
    return []
