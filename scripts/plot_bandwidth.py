#!/usr/bin/env python3
"""Plot a `day18 probe --json FILE` result: bandwidth against copy size, one line per copy kind.

Two panels share the size axis (log scale, 4 KiB .. 1 GiB):
  top     the device kinds (D2D cudaMemcpy, the copy, read-only and write-only kernels), with the
          HBM datasheet peak (memory clock x 2 x bus width, from the device attributes) and P
          (the 1 GiB D2D copy every "% of P" in the project is measured against);
  bottom  the host kinds (H2D/D2H pinned and pageable, both directions at once), with the host
          link's peak (PCIe, per direction and both directions): a host copy is never compared
          with HBM, which is the seed's mistake.
GB/s is bytes MOVED per second (a D2D copy reads and writes each byte: 2x the bytes copied), the
median of the repeats; the shaded band is p20..p80. Where each line reaches half its peak is marked.

Examples:
  build/engine/day18 probe --json bw.json && .venv/bin/python scripts/plot_bandwidth.py bw.json
      -> bw.png and bw.svg beside bw.json
  scripts/plot_bandwidth.py reference/results/h200/bandwidth.json --out /tmp/h200_bw
  scripts/plot_bandwidth.py bw.json --check      # read and summarize only (no matplotlib needed)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

SCHEMA = "day18-bandwidth-probe/1"
DEVICE_KINDS = ["d2d", "d2d_kernel", "read_kernel", "write_kernel"]
HOST_KINDS = ["h2d_pinned", "d2h_pinned", "h2d_pageable", "d2h_pageable", "bidirectional"]


def load(path: Path) -> dict:
    """The probe's JSON, checked for what the plot reads; exits with a clear message if not."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"plot_bandwidth: cannot read {path}: {e}")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        data = data if isinstance(data, dict) else {}
        sys.exit(f"plot_bandwidth: {path} is not a `day18 probe --json` file "
                 f"(schema {data.get('schema')!r}, expected {SCHEMA!r})")
    for key in ("provenance", "results", "p_gbps", "datasheet"):
        if key not in data:
            sys.exit(f"plot_bandwidth: {path} has no '{key}'")

    def shape(where: str, v: object, want: str, ok: bool) -> None:
        if not ok:
            sys.exit(f"plot_bandwidth: {path}: {where}: expected {want}, got {json.dumps(v)[:60]}")

    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    shape("provenance", data["provenance"], "an object", isinstance(data["provenance"], dict))
    shape("datasheet", data["datasheet"], "an object", isinstance(data["datasheet"], dict))
    shape("p_gbps", data["p_gbps"], "a number", number(data["p_gbps"]))
    shape("results", data["results"], "a list", isinstance(data["results"], list))
    for k, v in data["provenance"].items():
        shape(f"provenance.{k}", v, "a string or a number", isinstance(v, (str, int, float)))
    ds = data["datasheet"]
    if ds.get("hbm_gbps") is not None:
        shape("datasheet.hbm_gbps", ds["hbm_gbps"], "a number", number(ds["hbm_gbps"]))
    if "link" in ds:
        link = ds["link"]
        shape("datasheet.link", link, "an object", isinstance(link, dict))
        if link.get("name") is not None:
            shape("datasheet.link.name", link["name"], "a string", isinstance(link["name"], str))
        if link.get("gbps_per_direction") is not None:
            shape("datasheet.link.gbps_per_direction", link["gbps_per_direction"], "a number",
                  number(link["gbps_per_direction"]))
    for i, r in enumerate(data["results"]):
        shape(f"results[{i}]", r, "an object", isinstance(r, dict))
        for key in ("kind", "name", "bytes", "gbps", "gbps_p20", "gbps_p80"):
            if key not in r:
                sys.exit(f"plot_bandwidth: {path}: results[{i}] has no '{key}'")
        for key in ("kind", "name"):
            shape(f"results[{i}].{key}", r[key], "a string", isinstance(r[key], str))
        for key in ("gbps", "gbps_p20", "gbps_p80"):
            shape(f"results[{i}].{key}", r[key], "a number", number(r[key]))
        shape(f"results[{i}].bytes", r["bytes"], "a size in bytes (> 0)", number(r["bytes"]) and r["bytes"] > 0)
    if not data["results"]:
        sys.exit(f"plot_bandwidth: {path}: \"results\" is empty (the probe measured nothing)")
    return data


def series(data: dict) -> dict[str, list[dict]]:
    """Results grouped by kind, each sorted by size, kinds in the file's order."""
    out: dict[str, list[dict]] = {}
    for r in data["results"]:
        out.setdefault(r["kind"], []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r["bytes"])
    return out


def size_label(b: float) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if b >= scale:
            v = b / scale
            return f"{v:.0f}{unit}" if v == int(v) else f"{v:.1f}{unit}"
    return f"{b:.0f}"


def half_size(points: list[dict]) -> float | None:
    """Where gbps first reaches half its peak, interpolated in log size (as the probe does)."""
    peak = max(p["gbps"] for p in points)
    for i, p in enumerate(points):
        if p["gbps"] >= peak / 2:
            if i == 0:
                return float(p["bytes"])
            lo = points[i - 1]
            f = (peak / 2 - lo["gbps"]) / (p["gbps"] - lo["gbps"])
            return math.exp(math.log(lo["bytes"]) + f * (math.log(p["bytes"]) - math.log(lo["bytes"])))
    return None


def summary(data: dict) -> str:
    prov = data["provenance"]
    lines = [f"{prov.get('gpu', '?')}  driver {prov.get('nvidia_driver', '?')}  CUDA "
             f"{prov.get('cuda_runtime', '?')}  commit {prov.get('commit', '?')}",
             f"P = {data['p_gbps']:.0f} GB/s; HBM datasheet "
             f"{data['datasheet'].get('hbm_gbps') or 'unknown'} GB/s; host link "
             f"{data['datasheet'].get('link', {}).get('name', 'unknown')}",
             f"{'kind':<16} {'sizes':>5} {'largest':>8} {'GB/s there':>11} {'peak GB/s':>10} {'half at':>8}"]
    for kind, pts in series(data).items():
        h = half_size(pts)
        lines.append(f"{kind:<16} {len(pts):>5} {size_label(pts[-1]['bytes']):>8} "
                     f"{pts[-1]['gbps']:>11.1f} {max(p['gbps'] for p in pts):>10.1f} "
                     f"{size_label(h) if h else '-':>8}")
    return "\n".join(lines)


def draw(data: dict, out: Path, formats: list[str]) -> list[Path]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullFormatter
    except ImportError:
        sys.exit("plot_bandwidth: needs matplotlib (scripts/lab setup makes .venv with it; "
                 "--check works without it)")
    groups = series(data)
    prov = data["provenance"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = {r["kind"]: r["name"] for r in data["results"]}
    all_sizes = sorted({r["bytes"] for r in data["results"]})

    def lines(ax, kinds):
        drawn = 0
        for i, kind in enumerate(k for k in kinds if k in groups):
            pts = groups[kind]
            x = [p["bytes"] for p in pts]
            c = colors[i % len(colors)]
            ax.plot(x, [p["gbps"] for p in pts], marker="o", ms=3, color=c, label=names[kind])
            ax.fill_between(x, [p["gbps_p20"] for p in pts], [p["gbps_p80"] for p in pts],
                            color=c, alpha=0.15, linewidth=0)
            h = half_size(pts)
            if h:
                ax.plot([h], [max(p["gbps"] for p in pts) / 2], marker="|", ms=12, color=c)
            drawn += 1
        return drawn

    n_dev = lines(top, DEVICE_KINDS)
    hbm = data["datasheet"].get("hbm_gbps")
    if hbm:
        top.axhline(hbm, color="black", ls="--", lw=1, label=f"HBM datasheet {hbm:.0f} GB/s")
    top.axhline(data["p_gbps"], color="tab:red", ls=":", lw=1.5,
                label=f"P = {data['p_gbps']:.0f} GB/s (1 GiB D2D cudaMemcpy)")
    top.set_ylabel("GB/s moved (device)")
    top.set_title(f"{prov.get('gpu', '?')}: copy bandwidth vs size (median, p20-p80 band; "
                  f"| = half of the peak)", fontsize=10)
    top.legend(fontsize=7, loc="upper left")
    top.grid(True, which="major", alpha=0.3)
    if not n_dev:
        top.text(0.5, 0.5, "no device kinds in this file", transform=top.transAxes, ha="center")

    n_host = lines(bottom, HOST_KINDS)
    link = data["datasheet"].get("link", {})
    if link.get("gbps_per_direction"):
        g = link["gbps_per_direction"]
        bottom.axhline(g, color="black", ls="--", lw=1,
                       label=f"{link.get('name', 'link')} {g:.1f} GB/s per direction")
        if "bidirectional" in groups:
            bottom.axhline(2 * g, color="gray", ls="--", lw=1, label=f"both directions {2 * g:.1f}")
    bottom.set_ylabel("GB/s (host link)")
    bottom.set_xlabel("bytes per copy (per direction for H2D+D2H)")
    bottom.legend(fontsize=7, loc="upper left")
    bottom.grid(True, which="major", alpha=0.3)
    if not n_host:
        bottom.text(0.5, 0.5, "no host kinds in this file", transform=bottom.transAxes, ha="center")

    bottom.set_xscale("log", base=2)
    ticks = all_sizes if len(all_sizes) <= 10 else all_sizes[::2]
    bottom.xaxis.set_major_locator(FixedLocator(ticks))
    bottom.xaxis.set_minor_formatter(NullFormatter())
    bottom.set_xticks(ticks, [size_label(t) for t in ticks])
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
    fig.text(0.99, 0.005, f"driver {prov.get('nvidia_driver', '?')}, CUDA "
             f"{prov.get('cuda_runtime', '?')}, commit {prov.get('commit', '?')}, "
             f"{prov.get('time_utc', '')}", ha="right", fontsize=6, color="gray")
    fig.tight_layout()
    written = []
    for fmt in formats:
        path = out.with_suffix("." + fmt)
        fig.savefig(path, dpi=120 if fmt == "png" else None)
        written.append(path)
    plt.close(fig)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="the JSON written by `day18 probe --json FILE`")
    ap.add_argument("--out", type=Path,
                    help="output path without extension (default: the JSON's, e.g. bw.json -> bw.png)")
    ap.add_argument("--formats", default="png,svg", help="comma-separated: png, svg, pdf (default png,svg)")
    ap.add_argument("--check", action="store_true",
                    help="read the file and print what would be plotted; draw nothing")
    args = ap.parse_args()
    data = load(args.results)
    print(summary(data))
    if args.check:
        return 0
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad or not formats:
        ap.error(f"--formats {args.formats!r}: use png, svg and/or pdf")
    out = args.out if args.out else args.results.with_suffix("")
    for p in draw(data, out, formats):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
