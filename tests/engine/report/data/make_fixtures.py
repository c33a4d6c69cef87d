#!/usr/bin/env python3
"""Writes the three hand-made experiment fixtures of tests/engine/report (block_size.json,
batch_size.json, precision.json) in the day18.tune.v1 contract (docs/report.md).

They are NOT measurements: realistic H200-like numbers from a simple model (bytes / time at a
chosen fraction of P, llama-1b's shapes), made so that every derived field (pct_of_p, speedup,
within_noise, tokens/s) is consistent with the others, as `day18 tune` writes them. Each file says
so in its "notes". Run it only when the fixtures must change on purpose, then regenerate the
expected report (tests/engine/report/README.md).

  python3 tests/engine/report/data/make_fixtures.py
"""
from __future__ import annotations

import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
P = 4171.6209863699305  # GB/s: the H200 probe of reference/results/h200/bandwidth
PROV = {"gpu": "NVIDIA H200", "driver": "580.159.04", "cuda_runtime": "13.0", "commit": "0000000handmade",
        "date": "2026-12-03T10:00:00Z", "sm_count": 132}
ROOF = {"p_gbps": P, "p_source": "probe run in this process", "peak_tflops": 789.0, "peak_fma_tflops": 56.0}
NOTE = "HAND-MADE FIXTURE (tests/engine/report/data/make_fixtures.py): realistic H200-like numbers from a model, not a measurement"


def pct(bytes_: float, us: float) -> float:
    return round(bytes_ / (us * 1e-6) / (P * 1e9) * 100, 2)


def point(config, label, med, p20, p80, bytes_, flops, occ, verdict, err, tol, extra=None, repeats=50):
    return {"config": config, "label": label, "correct": True, "max_abs_err": err, "tolerance": tol,
            "median_us": med, "p20_us": p20, "p80_us": p80, "repeats": repeats,
            "bytes": bytes_, "flops": flops, "pct_of_p": pct(bytes_, med),
            "occupancy": occ, "verdict": verdict, "extra": extra or {}}


def occ(theo, blocks, regs, smem, waves):
    return {"theoretical_pct": theo, "blocks_per_sm": blocks, "registers": regs, "shared_bytes": smem, "waves": waves}


def group(name, kernel, shape, points, baseline, best):
    b, w = points[baseline], points[best]
    within = baseline != best and w["p20_us"] <= b["p80_us"] and b["p20_us"] <= w["p80_us"]
    return {"name": name, "kernel": kernel, "shape": shape, "baseline": baseline, "best": best,
            "speedup": round(b["median_us"] / w["median_us"], 4), "within_noise": within, "points": points}


def block_size() -> dict:
    # paged_attention v1, B=64, context 4096, 32 heads / 8 KV heads, head 64, fp16: K and V read once.
    kv = 64 * 4096 * 8 * 64 * 2 * 2
    qo = 64 * 32 * 64 * 2 * 2
    fl = 64 * 32 * 4096 * 64 * 2 * 2
    grid = 64 * 32
    lat, mem = "LATENCY BOUND (occupancy limited by registers)", "MEMORY BOUND (DRAM)"
    g1 = [
        point({"threads": 64}, "64 threads", 262.0, 260.1, 264.4, kv + qo, fl, occ(31.2, 10, 96, 1280, round(grid / (10 * 132), 2)), lat, 9.8e-4, 2e-3),
        point({"threads": 128}, "128 threads", 226.0, 224.8, 227.9, kv + qo, fl, occ(31.2, 5, 96, 2304, round(grid / (5 * 132), 2)), lat, 9.8e-4, 2e-3),
        point({"threads": 256}, "256 threads", 171.6, 170.9, 172.8, kv + qo, fl, occ(50.0, 4, 64, 4352, round(grid / (4 * 132), 2)), mem, 9.8e-4, 2e-3),
        point({"threads": 512}, "512 threads", 182.0, 180.7, 183.6, kv + qo, fl, occ(50.0, 2, 64, 8448, round(grid / (2 * 132), 2)), mem, 9.8e-4, 2e-3),
        {"config": {"threads": 1024}, "label": "1024 threads", "correct": False, "max_abs_err": 0.31, "tolerance": 2e-3},
    ]
    # The same kernel at the profiled step's shape: B=8, context 1024: 256 blocks, under one wave.
    kv8 = 8 * 1024 * 8 * 64 * 2 * 2
    qo8 = 8 * 32 * 64 * 2 * 2
    fl8 = 8 * 32 * 1024 * 64 * 2 * 2
    wave = "LATENCY BOUND (grid below one wave)"
    g2 = [
        point({"threads": 64}, "64 threads", 16.2, 15.9, 16.6, kv8 + qo8, fl8, occ(31.2, 10, 96, 1280, 0.19), wave, 7.3e-4, 2e-3),
        point({"threads": 128}, "128 threads", 14.9, 14.6, 15.3, kv8 + qo8, fl8, occ(31.2, 5, 96, 2304, 0.39), wave, 7.3e-4, 2e-3),
        point({"threads": 256}, "256 threads", 14.5, 14.2, 15.0, kv8 + qo8, fl8, occ(50.0, 4, 64, 4352, 0.48), wave, 7.3e-4, 2e-3),
        point({"threads": 512}, "512 threads", 15.8, 15.4, 16.3, kv8 + qo8, fl8, occ(50.0, 2, 64, 8448, 0.97), wave, 7.3e-4, 2e-3),
    ]
    # fused_add_rms_norm, 64 tokens x 2048: reads x and the residual, writes both.
    nb = 64 * 2048 * 2 * 4 + 2048 * 2
    nf = 64 * 2048 * 4
    g3 = [
        point({"threads": 128}, "128 threads", 3.71, 3.65, 3.78, nb, nf, occ(100.0, 16, 24, 64, 0.03), wave, 3.9e-3, 7.8e-3),
        point({"threads": 256}, "256 threads", 3.52, 3.47, 3.58, nb, nf, occ(100.0, 8, 24, 64, 0.06), wave, 3.9e-3, 7.8e-3),
        point({"threads": 512}, "512 threads", 3.60, 3.54, 3.67, nb, nf, occ(100.0, 4, 24, 64, 0.12), wave, 3.9e-3, 7.8e-3),
        point({"threads": 1024}, "1024 threads", 3.84, 3.77, 3.92, nb, nf, occ(100.0, 2, 24, 64, 0.24), wave, 3.9e-3, 7.8e-3),
    ]
    return {
        "schema": "day18.tune.v1", "experiment": "block_size",
        "provenance": {**PROV, "command": "day18 tune block-size --json block_size.json"},
        "roof": ROOF,
        "hypothesis": "paged_attention_v1 at 128 threads is occupancy-limited by its 96 registers (31% of the warp slots); 256 threads at 64 registers keeps more loads in flight and should move it from latency- to memory-bound, while at B=8 the grid is under one wave and the block size should not matter",
        "parameters": ["threads"],
        "groups": [
            group("paged_attention v1, B=64 ctx 4096 fp16", "paged_attention",
                  {"num_seqs": 64, "context_len": 4096, "num_heads": 32, "num_kv_heads": 8, "head_size": 64, "kv_block_size": 16}, g1, 1, 2),
            group("paged_attention v1, B=8 ctx 1024 fp16", "paged_attention",
                  {"num_seqs": 8, "context_len": 1024, "num_heads": 32, "num_kv_heads": 8, "head_size": 64, "kv_block_size": 16}, g2, 1, 2),
            group("fused_add_rms_norm, 64 tokens x 2048 fp16", "fused_add_rms_norm",
                  {"num_tokens": 64, "hidden": 2048}, g3, 0, 1),
        ],
        "notes": [NOTE, "1024 threads: paged_attention failed its check against the CPU oracle and was not timed"],
    }


def batch_size() -> dict:
    weights = 2.4716e9  # llama-1b fp16: 1.236e9 parameters read once a step (lm_head tied)
    kv_per_seq = 1024 * 16 * 8 * 64 * 2 * 2  # context 1024, 16 layers, 8 KV heads, head 64, K+V
    pts = []
    floor_ms = weights / (P * 1e9) * 1e3
    for b in [1, 2, 4, 8, 16, 32, 64, 128, 256]:
        bytes_ = weights + b * kv_per_seq
        ms = bytes_ / (0.82 * P * 1e9) * 1e3 + 0.110
        us = round(ms * 1e3, 1)
        spread = round(us * 0.006, 1)
        flops = 2 * 1.236e9 * b + b * 16 * 32 * 1024 * 64 * 4
        verdict = "MEMORY BOUND (DRAM)" if pct(bytes_, us) >= 60 else "LATENCY BOUND (stalls)"
        pts.append(point({"batch": b}, f"batch {b}", us, round(us - spread, 1), round(us + spread, 1), bytes_, flops,
                         occ(0, 0, 0, 0, 0), verdict, 2.4e-2, 0.1,
                         extra={"step_ms": round(us / 1e3, 4), "tokens_per_s": round(b / (us * 1e-6), 1),
                                "weight_bytes": weights, "weight_floor_ms": floor_ms,
                                "x_weight_floor": round(us / 1e3 / floor_ms, 3),
                                "memory_bytes": {"weights": weights, "kv_cache": b * kv_per_seq}}, repeats=20))
    # day18 tune's convention: best = the smallest step time (B=1); the knee is marked in extra.
    first = pts[0]["median_us"]
    knee = max(i for i, p in enumerate(pts) if p["median_us"] <= 1.25 * first)
    pts[knee]["extra"]["knee"] = True
    best = 0
    return {
        "schema": "day18.tune.v1", "experiment": "batch_size",
        "provenance": {**PROV, "command": "day18 tune batch-size --presets llama-1b --batches 1,2,4,8,16,32,64,128,256 --json batch_size.json"},
        "roof": ROOF,
        "hypothesis": "a decode step reads every weight once whatever the batch, so up to the knee a bigger batch is nearly free (tokens/s grows with the batch) and beyond it the KV-cache reads grow the step",
        "parameters": ["batch"],
        "groups": [group("llama-1b decode, ctx 1024 fp16, CUDA graphs", "decode_step",
                         {"context_len": 1024, "layers": 16, "hidden": 2048}, pts, 0, best)],
        "notes": [NOTE, "occupancy: zeros, a step is not one kernel",
                  "best = the smallest step time, i.e. B=1: for this experiment read tokens_per_s and the knee (extra), not best/speedup"],
    }


def precision() -> dict:
    groups = []
    tol = {"fp32": 1e-5, "fp16": 2e-3, "bf16": 1.6e-2}
    err = {"fp32": 3.1e-6, "fp16": 9.8e-4, "bf16": 7.1e-3}
    size = {"fp32": 4, "fp16": 2, "bf16": 2}

    def three(name, kernel, shape, elems_bytes, flops, us, verdicts, occs, extras=None, tols=tol, errs=err):
        pts = []
        for i, dt in enumerate(["fp32", "fp16", "bf16"]):
            med = us[dt]
            s = round(med * 0.008, 2 if med < 100 else 1)
            pts.append(point({"dtype": dt}, dt, med, round(med - s, 2), round(med + s, 2), elems_bytes * size[dt], flops,
                             occs[i], verdicts[dt], errs[dt], tols[dt], extra=(extras or {}).get(dt)))
        best = min(range(3), key=lambda i: pts[i]["median_us"])
        return group(name, kernel, shape, pts, 0, best)

    mem, lat = "MEMORY BOUND (DRAM)", "LATENCY BOUND (grid below one wave)"
    o = occ(31.2, 5, 96, 2304, 3.1)
    groups.append(three("rms_norm, 64 tokens x 2048", "rms_norm", {"num_tokens": 64, "hidden": 2048},
                        64 * 2048 * 2 + 2048, 64 * 2048 * 3, {"fp32": 4.10, "fp16": 3.30, "bf16": 3.34},
                        {"fp32": lat, "fp16": lat, "bf16": lat}, [occ(100.0, 16, 24, 64, 0.03)] * 3))
    groups.append(three("paged_attention v1, B=64 ctx 4096", "paged_attention",
                        {"num_seqs": 64, "context_len": 4096, "num_heads": 32, "num_kv_heads": 8, "head_size": 64},
                        64 * 4096 * 8 * 64 * 2 + 64 * 32 * 64 * 2, 64 * 32 * 4096 * 64 * 4,
                        {"fp32": 438.0, "fp16": 226.0, "bf16": 229.0}, {"fp32": lat.replace("grid below one wave", "occupancy limited by registers"),
                                                                        "fp16": lat.replace("grid below one wave", "occupancy limited by registers"),
                                                                        "bf16": lat.replace("grid below one wave", "occupancy limited by registers")}, [o] * 3))
    groups.append(three("gate_up_proj GEMM, M=64 N=16384 K=2048", "linear", {"m": 64, "n": 16384, "k": 2048},
                        2048 * 16384 + 64 * 2048 + 64 * 16384, 2 * 64 * 16384 * 2048,
                        {"fp32": 162.0, "fp16": 38.5, "bf16": 38.9}, {"fp32": "COMPUTE BOUND (FMA pipe)", "fp16": mem, "bf16": mem},
                        [occ(25.0, 1, 168, 98304, 0.97)] * 3))
    fam = {"fp32": {"attention": 0.55, "gemm": 1.83, "norm": 0.09, "other": 0.14},
           "fp16": {"attention": 0.29, "gemm": 0.72, "norm": 0.07, "other": 0.08},
           "bf16": {"attention": 0.29, "gemm": 0.73, "norm": 0.07, "other": 0.08}}
    weights = {"fp32": 4.9432e9, "fp16": 2.4716e9, "bf16": 2.4716e9}
    extras = {dt: {"step_ms": round(sum(fam[dt].values()), 4), "tokens_per_s": round(32 / (sum(fam[dt].values()) * 1e-3), 1),
                   "weight_bytes": weights[dt], "kernel_ms": fam[dt],
                   "max_logit_diff": {"fp32": 2.0e-5, "fp16": 3.1e-2, "bf16": 0.12}[dt],
                   "mean_abs_logit_diff": {"fp32": 1.1e-6, "fp16": 2.2e-3, "bf16": 9.0e-3}[dt],
                   "greedy_agreement": {"fp32": 1.0, "fp16": 1.0, "bf16": 0.997}[dt],
                   "logits_compared": 32 * 128256} for dt in fam}
    step_us = {dt: round(sum(fam[dt].values()) * 1e3, 1) for dt in fam}
    groups.append(three("decode step, llama-1b B=32 ctx 1024", "decode_step", {"num_seqs": 32, "context_len": 1024},
                        1.236e9 + 32 * 1024 * 16 * 8 * 64 * 2, 2 * 1.236e9 * 32,
                        step_us, {"fp32": mem, "fp16": mem, "bf16": mem}, [occ(0, 0, 0, 0, 0)] * 3, extras=extras,
                        tols={"fp32": 1e-4, "fp16": 0.1, "bf16": 0.25}, errs={"fp32": 2.0e-5, "fp16": 3.1e-2, "bf16": 0.12}))
    return {
        "schema": "day18.tune.v1", "experiment": "precision",
        "provenance": {**PROV, "command": "day18 tune precision --json precision.json"},
        "roof": ROOF,
        "hypothesis": "the decode step is memory-bound, so halving the bytes (fp16, bf16) should nearly halve each memory-bound kernel and the step; the GEMMs gain more, moving from the FMA pipe to the tensor cores",
        "parameters": ["dtype"],
        "groups": groups,
        "notes": [NOTE, "max_abs_err of the decode step: the largest logit difference from the fp32 CPU oracle"],
    }


def main() -> None:
    for name, make in [("block_size", block_size), ("batch_size", batch_size), ("precision", precision)]:
        (HERE / f"{name}.json").write_text(json.dumps(make(), indent=2) + "\n")
        print(f"wrote {HERE / name}.json")


if __name__ == "__main__":
    main()
