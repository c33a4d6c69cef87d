#!/usr/bin/env python3
"""Check the engine's Llama against Hugging Face transformers, end to end.

What it does, for each --dtype:
  1. builds a random LlamaForCausalLM (small GQA config, seeded; RMSNorm weights get noise too, so
     a misplaced norm weight shows), saves it with save_pretrained (safetensors, fp32);
  2. runs `day18 generate --model <folder> --prompt-ids ... --max-tokens N --dump-logits ...`
     (the engine converts the fp32 file to --dtype on load);
  3. runs transformers on the same folder in the same dtype: greedy decoding with the KV cache
     (its own forward, step by step) for the tokens, and one teacher-forced forward over the
     prompt + the ENGINE's tokens for the logits (so the logits are compared on identical inputs
     even if a near-tie made the greedy paths part);
  4. prints a table per step and writes reference/results/<gpu or cpu>/transformers_check_<dtype>.json
     with the versions, the config, both token lists, the largest logit difference and the verdict.

Pass: same greedy tokens, and max |logit difference| within the dtype's tolerance. A token that
differs where transformers' own top-2 logits are closer than that tolerance is a near-tie (the
two implementations round differently; neither is wrong): reported as such, not a failure.

With --throughput it measures speed instead (issue 3: decode tokens/s next to transformers'):
  1. builds a random LlamaForCausalLM of an engine preset's shape (--shape llama-1b: 16 layers,
     hidden 2048, 32/8 heads x 64, intermediate 8192, vocab 128256, tied), directly on --device in
     --dtype (fp16 by default), and saves it with save_pretrained;
  2. for each batch size B, the same B prompts of --prompt-len random ids go to
       day18 run --model <folder> --prompt-file ... --output-len O --cuda-graphs on|off --json ...
     (one process per run; decode tokens/s = decode tokens / wall time of the decode steps, and
     the median decode step from the JSON) and to transformers' model.generate (greedy, KV cache,
     min_new_tokens = max_new_tokens = O, no EOS stop; plain generate: dynamic cache, no
     torch.compile; --tf-static-cache adds a static-cache row). Transformers' decode time is
     t(O new tokens) - t(1 new token): the prefill and the first token cancel out, so
       decode tokens/s = B * (O - 1) / (t(O) - t(1)),  medians over --repeats, after a warm-up;
  3. prints a table and writes reference/results/<gpu or cpu>/transformers_throughput.json
     (versions, GPU, engine commit, shapes, every raw timing).

Needs torch and transformers (5.x; 4.4x works too). Examples:
  /work/venv-torch/bin/python scripts/check_against_transformers.py --device cpu --dtype fp32
  python scripts/check_against_transformers.py --device cuda --dtype fp32 fp16
  python scripts/check_against_transformers.py --throughput --device cuda --shape llama-1b \
      --batches 1 64 --prompt-len 32 --output-len 64          # about 2 minutes on an H100
  /work/venv-torch/bin/python scripts/check_against_transformers.py --throughput --device cpu \
      --shape tiny --batches 1 4 --output-len 16 --no-write   # smoke test
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# |engine - transformers| on logits of magnitude ~1: fp32 differs only by summation order;
# half types by one rounding of every activation (the two libraries round at different places).
TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2, "bf16": 1.5e-1}
ROOT = Path(__file__).resolve().parent.parent

# The engine's presets (ModelConfig::preset in engine/runtime/model_config.cpp), field for field, so
# that --throughput times the model `day18 run --preset <shape>` builds, loaded from a folder.
SHAPES = {
    "tiny": dict(layers=2, hidden=256, heads=4, kv_heads=2, head_dim=64, intermediate=512,
                 vocab=512, max_position=2048, rope_theta=10000.0, eps=1e-5, tie=False),
    "llama-1b": dict(layers=16, hidden=2048, heads=32, kv_heads=8, head_dim=64, intermediate=8192,
                     vocab=128256, max_position=131072, rope_theta=500000.0, eps=1e-5, tie=True),
    "llama-8b": dict(layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128,
                     intermediate=14336, vocab=128256, max_position=131072, rope_theta=500000.0,
                     eps=1e-5, tie=False),
}


def log(msg: str) -> None:
    print(msg, flush=True)


def gpu_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100' (same rule as scripts/gpu_check.sh)."""
    words = re.sub(r"[^a-z0-9]", " ", name.lower()).split()
    skip = re.compile(r"^(nvidia|geforce|tesla|[0-9]+gb|hbm[0-9a-z]*)$")
    return "-".join(w for w in words if not skip.match(w)) or "gpu"


def check_shape(args: argparse.Namespace) -> dict:
    """The correctness check's small model, from the command line (same keys as SHAPES)."""
    return dict(layers=args.layers, hidden=args.hidden, heads=args.heads, kv_heads=args.kv_heads,
                head_dim=args.hidden // args.heads, intermediate=args.intermediate,
                vocab=args.vocab, max_position=args.max_position, rope_theta=10000.0, eps=1e-5,
                tie=args.tie)


def build_model(shape: dict, init_std: float, seed: int, folder: Path, dtype: str = "fp32",
                device: str = "cpu", max_shard_size: str | None = None):
    """A seeded random LlamaForCausalLM of `shape`, saved to `folder` with save_pretrained.

    The parameters are created directly in `dtype` on `device`: a 1B model in fp16 on the GPU
    takes seconds, where the default (fp32 on the CPU, then converted) takes 5 GB and a minute.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        head_dim=shape["head_dim"],
        max_position_embeddings=shape["max_position"],
        rope_theta=shape["rope_theta"],
        rms_norm_eps=shape["eps"],
        initializer_range=init_std,
        tie_word_embeddings=shape["tie"],
        attention_bias=False,
        mlp_bias=False,
    )
    torch.manual_seed(seed)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(DTYPES[dtype])
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(default_dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # HF initialises these to exactly 1
                p.add_(0.1 * torch.randn_like(p))
    kwargs = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    model.save_pretrained(folder, safe_serialization=True, **kwargs)
    return model


def run_engine(args, folder: Path, prompt: list[int], dtype: str, out: Path) -> dict:
    from safetensors.torch import load_file

    cmd = [str(args.binary), "generate", "--model", str(folder), "--prompt-ids",
           ",".join(map(str, prompt)), "--max-tokens", str(args.max_tokens), "--device", args.device,
           "--dtype", dtype, "--dump-logits", str(out)]
    print("$", " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"day18 generate failed with exit code {r.returncode}")
    d = load_file(str(out))
    return {"tokens": d["tokens"].tolist(), "logits": d["logits"].double()}


@torch.no_grad()
def run_transformers(model, prompt: list[int], engine_tokens: list[int], n: int, dtype: str,
                     device: str) -> dict:
    m = model.to(device=device, dtype=DTYPES[dtype])
    # Greedy with the KV cache, one forward per step (what generate() does, without its stopping
    # rules: no EOS in a random model's vocabulary means anything).
    ids = torch.tensor([prompt], device=device)
    out = m(input_ids=ids, use_cache=True)
    past, tokens, gaps = out.past_key_values, [], []
    logits = out.logits[0, -1].double()
    for step in range(n):
        top2 = torch.topk(logits, 2).values
        gaps.append(float(top2[0] - top2[1]))
        tok = int(torch.argmax(logits))
        tokens.append(tok)
        if step + 1 == n:
            break
        out = m(input_ids=torch.tensor([[tok]], device=device), past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[0, -1].double()
    # Teacher-forced on the engine's sequence: row i = logits after prompt + engine_tokens[:i].
    seq = torch.tensor([prompt + engine_tokens[:-1]], device=device)
    forced = m(input_ids=seq).logits[0, len(prompt) - 1:].double().cpu()
    return {"tokens": tokens, "logits": forced, "gaps": gaps}


def versions(args) -> dict:
    import transformers

    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:  # no git there
        commit = ""
    # The commit the engine binary was built from (`day18 --version`: "day18 0.1.0 (commit X)"):
    # on a GPU machine the tree may be a copy without git, and the binary is what was measured.
    try:
        ver = subprocess.run([str(args.binary), "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        ver = ""
    m = re.search(r"\(commit ([^)\s]+)\)", ver)
    engine_commit = m.group(1) if m else "unknown"
    v = {"torch": torch.__version__, "transformers": transformers.__version__,
         "python": platform.python_version(), "commit": commit or engine_commit,
         "engine_commit": engine_commit, "host": platform.node()}
    if args.device == "cuda" and torch.cuda.is_available():
        v["gpu"] = torch.cuda.get_device_name(0)
        v["cuda"] = torch.version.cuda
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True)
        v["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else "unknown"
    return v


def check(args, model, folder: Path, prompt: list[int], dtype: str, tmp: Path) -> dict:
    eng = run_engine(args, folder, prompt, dtype, tmp / f"engine_{dtype}.safetensors")
    hf_device = args.device if args.device == "cpu" or torch.cuda.is_available() else "cpu"
    hf = run_transformers(model, prompt, eng["tokens"], args.max_tokens, dtype, hf_device)
    tol = args.tolerance if args.tolerance is not None else TOLERANCE[dtype]
    diff = (eng["logits"] - hf["logits"]).abs().amax(dim=1).tolist()

    print(f"\n{dtype}: engine on {args.device} vs transformers {hf_device} (tolerance {tol:g})")
    print(f"{'step':>4} {'engine':>7} {'hf':>7} {'max|dlogit|':>12} {'hf top-2 gap':>13}")
    first_diff, near_tie = None, False
    for i in range(args.max_tokens):
        e, h = eng["tokens"][i], hf["tokens"][i]
        mark = ""
        if e != h and first_diff is None:
            first_diff, near_tie = i, hf["gaps"][i] < tol
            mark = "  <- differs" + (" (near-tie)" if near_tie else "")
        print(f"{i:>4} {e:>7} {h:>7} {diff[i]:>12.3e} {hf['gaps'][i]:>13.3e}{mark}")
    max_diff = max(diff)
    logits_ok = max_diff <= tol
    tokens_ok = first_diff is None
    passed = logits_ok and (tokens_ok or near_tie)
    verdict = "PASS" if passed else "FAIL"
    if passed and not tokens_ok:
        verdict = "PASS (tokens part at a near-tie)"
    print(f"tokens {'equal' if tokens_ok else f'differ from step {first_diff}'}; "
          f"max |logit diff| {max_diff:.3e} (tolerance {tol:g}) -> {verdict}")
    return {
        "dtype": dtype, "device": args.device, "transformers_device": hf_device,
        "passed": passed, "verdict": verdict, "tokens_equal": tokens_ok,
        "first_token_difference": first_diff, "max_abs_logit_diff": max_diff,
        "max_abs_logit_diff_per_step": diff, "tolerance": tol,
        "prompt_ids": prompt, "engine_tokens": eng["tokens"], "transformers_tokens": hf["tokens"],
        "transformers_top2_gap": hf["gaps"],
    }


def write_result(args, slug: str, name: str, doc: dict) -> None:
    dest = args.results / slug / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")


def provenance(args, info: dict) -> dict:
    return {"command": " ".join(sys.argv),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": info}


def run_checks(args) -> int:
    """The correctness check: day18 generate vs transformers, tokens and logits, per dtype."""
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed + 1)
    prompt = torch.randint(0, args.vocab, (args.prompt_len,), generator=g).tolist()
    ok = True
    with tempfile.TemporaryDirectory(prefix="day18_hf_") as t:
        tmp = Path(t)
        folder = tmp / "model"
        shape = check_shape(args)
        model = build_model(shape, args.init_std, args.seed, folder)
        info = versions(args)
        slug = gpu_slug(info["gpu"]) if "gpu" in info else "cpu"
        for dtype in args.dtype:
            r = check(args, model, folder, prompt, dtype, tmp)
            ok &= r["passed"]
            if args.no_write:
                continue
            r.update({"what": "day18 generate vs transformers LlamaForCausalLM, greedy"})
            r.update(provenance(args, info))
            r["config"] = {"layers": args.layers, "hidden": args.hidden, "heads": args.heads,
                           "kv_heads": args.kv_heads, "head_dim": shape["head_dim"],
                           "intermediate": args.intermediate, "vocab": args.vocab,
                           "init_std": args.init_std, "tie_word_embeddings": args.tie,
                           "seed": args.seed}
            write_result(args, slug, f"transformers_check_{dtype}.json", r)
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------
# --throughput: decode tokens/s of `day18 run` and of transformers' generate, same folder, same
# prompts, same device, same process run.


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_engine_throughput(args, folder: Path, prompt_file: Path, batch: int, graphs: bool,
                          out: Path) -> dict:
    """One `day18 run` over the B prompts of prompt_file; the decode numbers of its JSON.

    Every request is prefilled in the first step (the token budget holds all B prompts, up to
    8192 tokens) and the next O - 1 steps are decode steps of exactly B sequences. The KV pool is
    sized to the workload, so the run does not claim 90% of the GPU for cache it never uses.
    Async scheduling stays on (the default) on cuda; on cpu it is off: the CPU backend computes
    inside submit(), so with async on each step's compute would be billed to the wall interval
    of the step before (the first decode step to the prefill), overstating decode tokens/s.
    """
    P, O = args.prompt_len, args.output_len
    blocks_per_seq = -(-(P + O) // 16) + 1
    cmd = [str(args.binary), "run", "--model", str(folder), "--dtype", args.dtype[0],
           "--device", args.device, "--prompt-file", str(prompt_file), "--output-len", str(O),
           "--max-num-seqs", str(batch),
           "--max-num-batched-tokens", str(max(1024, min(8192, batch * P))),
           "--max-model-len", str(P + O + 16),
           "--num-gpu-blocks", str(batch * blocks_per_seq + 64), "--num-cpu-blocks", "16",
           "--cuda-graphs", "on" if graphs else "off",
           "--async", "on" if args.device == "cuda" else "off", "--quiet", "--json", str(out)]
    if args.verbose:
        log("  $ " + " ".join(cmd))
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.engine_timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"day18 run took over {args.engine_timeout} s: {' '.join(cmd)}")
    if r.returncode != 0 or not out.exists():
        sys.stderr.write(r.stdout[-3000:] + r.stderr[-3000:])
        raise SystemExit(f"day18 run failed with exit code {r.returncode}: {' '.join(cmd)}")
    j = json.loads(out.read_text())
    tps = j["decode_tokens_per_s"]
    expected = batch * (O - 1)
    if j["decode_tokens"] != expected:
        log(f"  note: the engine ran {j['decode_tokens']} decode tokens, not B * (O - 1) = "
            f"{expected} (some decode steps were not of batch {batch})")
    return {
        "decode_tokens_per_s": tps,
        # Wall time per decode step: decode_wall_s / decode steps = B / (tokens/s).
        "decode_ms_per_step": 1000.0 * batch / tps if tps > 0 else None,
        # Median decode step's GPU compute interval (CUDA events; with graphs it includes sampling).
        "decode_step_compute_ms": j["decode_step_ms_by_batch"].get(str(batch)),
        "decode_tokens": j["decode_tokens"], "steps": j["steps"], "wall_s": j["wall_s"],
        "gpu_busy_fraction": j.get("gpu_busy_fraction"), "graph_replays": j["graph_replays"],
        "weight_bytes": j["weight_bytes"], "commit": j.get("commit"),
        "process_s": round(time.perf_counter() - t0, 2),
    }


def median_of_runs(runs: list[dict], batch: int) -> dict:
    tps = statistics.median(r["decode_tokens_per_s"] for r in runs)
    steps = [r["decode_step_compute_ms"] for r in runs if r["decode_step_compute_ms"] is not None]
    return {"decode_tokens_per_s": tps, "decode_ms_per_step": 1000.0 * batch / tps,
            "decode_step_compute_ms": statistics.median(steps) if steps else None, "runs": runs}


@torch.no_grad()
def transformers_throughput(model, prompts: list[list[int]], output_len: int, repeats: int,
                            device: str, static_cache: bool) -> dict:
    """Decode tokens/s of model.generate: greedy, KV cache, exactly output_len new tokens.

    t(n) = wall time of one generate() call that makes n new tokens (synchronised on both ends).
    t(1) is the prefill plus the first token; t(O) - t(1) is the O - 1 decode steps.
    """
    ids = torch.tensor(prompts, device=device)
    mask = torch.ones_like(ids)
    extra = {"cache_implementation": "static"} if static_cache else {}

    def generate(n: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                             max_new_tokens=n, min_new_tokens=n, pad_token_id=0, **extra)
        sync(device)
        dt = time.perf_counter() - t0
        if out.shape[1] != ids.shape[1] + n:
            raise SystemExit(f"transformers generated {out.shape[1] - ids.shape[1]} tokens, "
                             f"asked for {n}")
        return dt

    generate(output_len)  # warm-up: kernels, cuBLAS handles, the caching allocator
    generate(1)
    t1, tn = [], []
    for _ in range(repeats):
        t1.append(generate(1))
        tn.append(generate(output_len))
    decode_s = statistics.median(tn) - statistics.median(t1)
    if decode_s <= 0:
        raise SystemExit(f"transformers: t({output_len}) <= t(1) ({tn} vs {t1}): raise "
                         f"--output-len or --repeats")
    batch = len(prompts)
    return {"decode_tokens_per_s": batch * (output_len - 1) / decode_s,
            "decode_ms_per_step": 1000.0 * decode_s / (output_len - 1),
            "t_1_new_token_s": t1, f"t_{output_len}_new_tokens_s": tn,
            "median_t_1_s": statistics.median(t1), "median_t_out_s": statistics.median(tn)}


def print_throughput_table(rows: list[dict], title: str) -> None:
    def cell(d: dict | None) -> str:
        if not d:
            return f"{'-':>10} {'-':>8}"
        return f"{d['decode_tokens_per_s']:10.0f} {d['decode_ms_per_step']:8.2f}"

    static = any("static" in r["transformers"] for r in rows)
    head = (f"{'batch':>5} | {'engine graphs':^19} | {'engine eager':^19} | "
            f"{'transformers':^19} |" + (f" {'tf static cache':^19} |" if static else "") +
            " speedup")
    sub = (f"{'':>5} | " + " | ".join([f"{'tok/s':>10} {'ms/step':>8}"] * (4 if static else 3)) +
           " | engine/tf")
    log(f"\n{title}")
    log(head)
    log(sub)
    for r in rows:
        eng, tf = r["engine"], r["transformers"]
        best = eng.get("graphs") or eng.get("eager")
        speedup = best["decode_tokens_per_s"] / tf["dynamic"]["decode_tokens_per_s"]
        log(f"{r['batch']:5d} | {cell(eng.get('graphs'))} | {cell(eng.get('eager'))} | "
            f"{cell(tf['dynamic'])} |" + (f" {cell(tf.get('static'))} |" if static else "") +
            f" {speedup:8.1f}x")
    log("ms/step = wall time per decode step (engine: decode steps' wall time / steps; "
        "transformers: (t(O) - t(1)) / (O - 1)); tok/s = batch * 1000 / ms/step")


def run_throughput(args) -> int:
    import transformers

    if len(args.dtype) != 1:
        raise SystemExit("--throughput takes one --dtype")
    if args.output_len < 2:
        raise SystemExit("--output-len must be >= 2 (decode = tokens 2..O)")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--throughput --device cuda needs torch with CUDA: both sides must run on "
                         "the same GPU")
    dtype, shape, P, O = args.dtype[0], SHAPES[args.shape], args.prompt_len, args.output_len
    modes = [True, False] if args.device == "cuda" else [False]  # CUDA graphs: on, off
    if args.no_engine_eager and args.device == "cuda":
        modes = [True]
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="day18_tp_") as t:
        tmp = Path(t)
        folder = tmp / "model"
        log(f"building a random LlamaForCausalLM, {args.shape} shape, {dtype} on {args.device} ...")
        model = build_model(shape, 0.02, args.seed, folder, dtype, args.device, args.max_shard_size)
        files = sorted(f.name for f in folder.iterdir())
        n_params = sum(p.numel() for p in model.parameters())
        log(f"  {n_params / 1e6:.1f} M parameters, saved in {time.perf_counter() - t_start:.1f} s: "
            f"{', '.join(files)}")
        info = versions(args)
        attn = getattr(model.config, "_attn_implementation", None) or "unknown"
        g = torch.Generator().manual_seed(args.seed + 1)
        rows = []
        for batch in args.batches:
            prompts = torch.randint(0, shape["vocab"], (batch, P), generator=g).tolist()
            prompt_file = tmp / f"prompts_b{batch}.txt"
            prompt_file.write_text("".join(",".join(map(str, p)) + "\n" for p in prompts))
            row = {"batch": batch, "engine": {}, "transformers": {}}
            for graphs in modes:
                name = "graphs" if graphs else "eager"
                runs = []
                for rep in range(args.engine_repeats):
                    r = run_engine_throughput(args, folder, prompt_file, batch, graphs,
                                              tmp / f"engine_b{batch}_{name}_{rep}.json")
                    runs.append(r)
                    log(f"  B={batch:<4} engine {name:6} run {rep + 1}/{args.engine_repeats}: "
                        f"{r['decode_tokens_per_s']:9.0f} tok/s, {r['decode_ms_per_step']:7.2f} "
                        f"ms/step ({r['process_s']:.1f} s)")
                row["engine"][name] = median_of_runs(runs, batch)
            caches = ["dynamic"] + (["static"] if args.tf_static_cache else [])
            for cache in caches:
                t0 = time.perf_counter()
                r = transformers_throughput(model, prompts, O, args.repeats, args.device,
                                            cache == "static")
                row["transformers"][cache] = r
                log(f"  B={batch:<4} transformers ({cache} cache): {r['decode_tokens_per_s']:9.0f} "
                    f"tok/s, {r['decode_ms_per_step']:7.2f} ms/step "
                    f"({time.perf_counter() - t0:.1f} s)")
            rows.append(row)
        del model
    where = info.get("gpu", "CPU")
    commit = next((r["commit"] for row in rows for m in row["engine"].values()
                   for r in m["runs"] if r.get("commit")), None)
    print_throughput_table(rows, f"{args.shape} {dtype} on {where}: prompt {P}, output {O} tokens "
                                 f"(decode = tokens 2..{O}); transformers "
                                 f"{transformers.__version__} ({attn} attention, no "
                                 f"torch.compile); engine {commit}")
    log(f"total {time.perf_counter() - t_start:.0f} s")
    if args.no_write:
        return 0
    doc = {
        "what": "decode tokens/s: day18 run vs transformers generate, same weights (one "
                "save_pretrained folder), same prompts, same device, one script run",
        **provenance(args, {**info, "engine_commit": commit}),
        "shape": args.shape, "config": shape, "parameters": n_params, "dtype": dtype,
        "device": args.device, "prompt_len": P, "output_len": O, "batches": args.batches,
        "max_shard_size": args.max_shard_size, "saved_files": files,
        "engine": {"modes": ["graphs" if m else "eager" for m in modes],
                   "repeats": args.engine_repeats,
                   "definition": "decode_tokens / wall time of the decode-only steps, from the "
                                 "day18 run --json (median over runs); decode_step_compute_ms = "
                                 "median decode step's compute interval (CUDA events)"},
        "transformers": {"version": transformers.__version__, "attn_implementation": attn,
                         "generate": "greedy (do_sample=False), KV cache, min_new_tokens = "
                                     "max_new_tokens = output_len, no EOS stop",
                         "caches": ["dynamic"] + (["static"] if args.tf_static_cache else []),
                         "torch_compile": False, "repeats": args.repeats,
                         "definition": "B * (O - 1) / (median t(O new tokens) - median t(1 new "
                                       "token)), after one warm-up of each"},
        "rows": rows,
    }
    slug = gpu_slug(info["gpu"]) if "gpu" in info else "cpu"
    name = ("transformers_throughput.json" if args.shape == "llama-1b"
            else f"transformers_throughput_{args.shape}.json")
    write_result(args, slug, name, doc)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda",
                   help="backend of the engine (transformers runs on the same device if it can)")
    p.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=None,
                   help="default: fp32 fp16 (check), fp16 (--throughput)")
    p.add_argument("--binary", type=Path, default=ROOT / "build" / "engine" / "day18",
                   help="the day18 executable (default: build/engine/day18)")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4, help="query heads (head_dim = hidden / heads)")
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=688)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--max-position", type=int, default=512)
    p.add_argument("--init-std", type=float, default=0.05,
                   help="initializer_range (HF's 0.02 gives logits so flat that fp16 rounding "
                        "decides many greedy tokens)")
    p.add_argument("--tie", action="store_true", help="tie_word_embeddings=True")
    p.add_argument("--prompt-len", type=int, default=None,
                   help="prompt tokens (default: 12 for the check, 32 with --throughput)")
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=None, help="override the dtype's tolerance")
    p.add_argument("--results", type=Path, default=ROOT / "reference" / "results",
                   help="results root; files go to <root>/<gpu slug or cpu>/")
    p.add_argument("--no-write", action="store_true", help="print only, write no JSON")
    t = p.add_argument_group("throughput (--throughput; the model options above are ignored)")
    t.add_argument("--throughput", action="store_true",
                   help="time decode tokens/s of day18 run and of transformers' generate")
    t.add_argument("--shape", choices=list(SHAPES), default="llama-1b",
                   help="the engine preset whose shape the random model has (default llama-1b)")
    t.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    t.add_argument("--output-len", type=int, default=64, help="new tokens per request")
    t.add_argument("--repeats", type=int, default=5,
                   help="transformers: timed t(1), t(O) pairs per batch, median (default 5)")
    t.add_argument("--engine-repeats", type=int, default=3,
                   help="day18 run processes per batch and mode, median (default 3)")
    t.add_argument("--tf-static-cache", action="store_true",
                   help="also time transformers with cache_implementation='static' (no compile)")
    t.add_argument("--no-engine-eager", action="store_true",
                   help="on cuda, time the engine with CUDA graphs only (default: graphs "
                        "and eager)")
    t.add_argument("--max-shard-size", default=None,
                   help="save_pretrained's max_shard_size, e.g. 1GB to make a sharded folder "
                        "(default: transformers', one file for llama-1b)")
    t.add_argument("--engine-timeout", type=float, default=300,
                   help="seconds one day18 run may take (default 300)")
    t.add_argument("--verbose", action="store_true", help="print every day18 run command")
    args = p.parse_args()
    if args.dtype is None:
        args.dtype = ["fp16"] if args.throughput else ["fp32", "fp16"]
    if args.prompt_len is None:
        args.prompt_len = 32 if args.throughput else 12

    if not args.binary.exists():
        raise SystemExit(f"{args.binary} not found: build first (cmake --preset cpu && "
                         f"cmake --build build -j)")
    if args.throughput:
        return run_throughput(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("note: torch sees no CUDA device; transformers runs on the CPU", file=sys.stderr)
    return run_checks(args)


if __name__ == "__main__":
    sys.exit(main())
