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

Needs torch and transformers (5.x; 4.4x works too). Examples:
  /work/venv-torch/bin/python scripts/check_against_transformers.py --device cpu --dtype fp32
  python scripts/check_against_transformers.py --device cuda --dtype fp32 fp16
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# |engine - transformers| on logits of magnitude ~1: fp32 differs only by summation order;
# half types by one rounding of every activation (the two libraries round at different places).
TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2, "bf16": 1.5e-1}
ROOT = Path(__file__).resolve().parent.parent


def gpu_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100' (same rule as scripts/gpu_check.sh)."""
    words = re.sub(r"[^a-z0-9]", " ", name.lower()).split()
    skip = re.compile(r"^(nvidia|geforce|tesla|[0-9]+gb|hbm[0-9a-z]*)$")
    return "-".join(w for w in words if not skip.match(w)) or "gpu"


def build_model(args: argparse.Namespace, folder: Path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads,
        max_position_embeddings=args.max_position,
        rms_norm_eps=1e-5,
        initializer_range=args.init_std,
        tie_word_embeddings=args.tie,
        attention_bias=False,
        mlp_bias=False,
    )
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # HF initialises these to exactly 1
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder, safe_serialization=True)
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

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    v = {"torch": torch.__version__, "transformers": transformers.__version__,
         "python": platform.python_version(), "commit": commit, "host": platform.node()}
    if args.device == "cuda":
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda",
                   help="backend of the engine (transformers runs on the same device if it can)")
    p.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=["fp32", "fp16"])
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
    p.add_argument("--prompt-len", type=int, default=12)
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=None, help="override the dtype's tolerance")
    p.add_argument("--results", type=Path, default=ROOT / "reference" / "results",
                   help="results root; files go to <root>/<gpu slug or cpu>/")
    p.add_argument("--no-write", action="store_true", help="print only, write no JSON")
    args = p.parse_args()

    if not args.binary.exists():
        raise SystemExit(f"{args.binary} not found: build first (cmake --preset cpu && "
                         f"cmake --build build -j)")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("note: torch sees no CUDA device; transformers runs on the CPU", file=sys.stderr)

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed + 1)
    prompt = torch.randint(0, args.vocab, (args.prompt_len,), generator=g).tolist()
    ok = True
    with tempfile.TemporaryDirectory(prefix="day18_hf_") as t:
        tmp = Path(t)
        folder = tmp / "model"
        model = build_model(args, folder)
        info = versions(args)
        slug = gpu_slug(info["gpu"]) if args.device == "cuda" and "gpu" in info else "cpu"
        for dtype in args.dtype:
            r = check(args, model, folder, prompt, dtype, tmp)
            ok &= r["passed"]
            if args.no_write:
                continue
            r.update({
                "what": "day18 generate vs transformers LlamaForCausalLM, greedy",
                "command": " ".join(sys.argv),
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "versions": info,
                "config": {"layers": args.layers, "hidden": args.hidden, "heads": args.heads,
                           "kv_heads": args.kv_heads, "head_dim": args.hidden // args.heads,
                           "intermediate": args.intermediate, "vocab": args.vocab,
                           "init_std": args.init_std, "tie_word_embeddings": args.tie,
                           "seed": args.seed},
            })
            dest = args.results / slug / f"transformers_check_{dtype}.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(json.dumps(r, indent=1) + "\n")
            print(f"wrote {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
