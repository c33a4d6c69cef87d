#!/usr/bin/env python3
"""Compute golden outputs for every Day 18 op with PyTorch, an implementation independent of ours.

Each op family has a module in scripts/reference_ops/ with a ``cases(gen, device)`` function that
yields ``Case`` objects: seeded random inputs, attributes, and the outputs PyTorch computes. This
script writes one small safetensors file per case into reference/outputs/:

    in.<name>   input tensors, named as in docs/ops.md
    out.<name>  expected outputs
    __metadata__: the op's attributes, plus _op, _seed, _torch_version, _device

and a manifest (reference/outputs/manifest.json) with the shapes, seeds and versions. The C++ test
tests/engine/golden runs every file through the CPU oracle and the CUDA kernel.

Run it where torch is installed (the GPU machine has it; CPU torch works too):
    python3 scripts/make_reference_outputs.py                # all families, on cuda if present
    python3 scripts/make_reference_outputs.py --family rotary --device cpu
    python3 scripts/make_reference_outputs.py --family attention --case 'paged_attention_head32_*'

--case writes only the cases whose name matches (fnmatch patterns, repeatable): every case of the
family is still computed in order, so the random inputs of the new ones are what a full run gives,
but the files of the others, and their manifest entries, stay as they are.
"""
from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from reference_ops.common import Case  # noqa: E402

FAMILIES = ["embedding", "layernorm", "linear", "rotary", "cache", "attention", "activation",
            "sampling"]


def write_case(case: Case, out_dir: pathlib.Path, seed: int, device: str) -> dict:
    tensors = {f"in.{k}": v.detach().contiguous().cpu() for k, v in case.inputs.items()}
    tensors.update({f"out.{k}": v.detach().contiguous().cpu() for k, v in case.outputs.items()})
    meta = {k: str(v) for k, v in case.attrs.items()}
    meta.update({"_op": case.op, "_seed": str(seed), "_torch_version": torch.__version__,
                 "_device": device})
    save_file(tensors, str(out_dir / f"{case.name}.safetensors"), metadata=meta)
    return {"name": case.name, "op": case.op, "attrs": case.attrs, "seed": seed,
            "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                        for k, v in tensors.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", action="append", choices=FAMILIES,
                    help="only these op families (repeatable; default: all)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="where PyTorch computes the references (default: cuda if available)")
    ap.add_argument("--seed", type=int, default=1818, help="base seed; each case adds its index")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "reference" / "outputs")
    ap.add_argument("--case", action="append", metavar="GLOB",
                    help="only write the cases whose name matches (fnmatch, repeatable); the "
                         "others keep their files and manifest entries")
    args = ap.parse_args()

    def selected(name: str) -> bool:
        return not args.case or any(fnmatch.fnmatchcase(name, g) for g in args.case)

    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"cases": []}
    families = args.family or FAMILIES
    keep = [c for c in manifest["cases"]
            if c.get("family") not in families or not selected(c["name"])]
    entries = []
    for fam in families:
        mod = importlib.import_module(f"reference_ops.{fam}")
        for i, case in enumerate(mod.cases(args.device, args.seed)):
            if not selected(case.name):
                continue
            seed = args.seed
            entry = write_case(case, args.out, seed, args.device)
            entry["family"] = fam
            entries.append(entry)
            print(f"  {fam:10s} {case.name}")
    if args.case and not entries:
        sys.exit(f"no case of {', '.join(families)} matches --case {' '.join(args.case)}")
    manifest = {"generator": "scripts/make_reference_outputs.py", "torch_version": torch.__version__,
                "device": args.device,
                "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
                "cases": sorted(keep + entries, key=lambda c: c["name"])}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(entries)} cases to {args.out}")


if __name__ == "__main__":
    main()
