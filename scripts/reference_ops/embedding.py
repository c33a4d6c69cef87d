"""PyTorch reference for the embedding op family: embedding (F.embedding, a row gather).

token_ids int32 [num_tokens] with repeats; weight [vocab, hidden]; hidden sizes for the vector
(64) and scalar (77) paths; one token. Every dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import DTYPES, Case, generator, randn


def cases(device: str, seed: int):
    g = generator(device, seed)
    for tag, dt in DTYPES.items():
        for what, tokens, vocab, hidden in [("basic", 9, 50, 64), ("odd", 5, 31, 77),
                                            ("one", 1, 100, 128)]:
            ids = torch.randint(0, vocab, (tokens,), generator=g, device=device,
                                dtype=torch.int64)
            if tokens > 2:
                ids[-1] = ids[0]  # a repeated id
            w = randn((vocab, hidden), dt, device, g)
            yield Case(f"embedding_{what}_{tag}", "embedding",
                       {"token_ids": ids.to(torch.int32), "weight": w}, {},
                       {"out": F.embedding(ids, w)})
