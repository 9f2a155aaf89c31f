"""Tokens/s against sequence length from `bench.py --json` rows: one line per implementation and mode.

    python benchmarks/plot.py rows.json --out docs/performance-cpu.png --title "2-core CPU, float32"
    python benchmarks/plot.py infer-bf16.json infer-bf16-compile.json train-bf16.json --impls ref-pt,ours-pt,\
        ref-pt-compile,ours-pt-compile --out docs/performance-h200.png --title "H200, bfloat16"

Needs matplotlib (installed by `benchmarks/setup_reference.sh`); nothing here is imported by the library.
"""

from __future__ import annotations

import argparse
import json

STYLE = {  # ours solid, the reference dashed, the matmul bound dotted grey
    "ours": dict(linestyle="-", marker="o"),
    "ref": dict(linestyle="--", marker="s"),
    "bound": dict(linestyle=":", color="grey"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", nargs="+", help="JSON files written by bench.py --json")
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="")
    parser.add_argument("--impls", help="comma-separated implementations to draw (default: all in the rows)")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for path in args.rows for row in json.load(open(path)) if "tokens_per_s" in row]
    if args.impls:
        rows = [row for row in rows if row["impl"] in args.impls.split(",")]
    modes = sorted({row["mode"] for row in rows}, key=("infer", "train").index)
    figure, axes = plt.subplots(1, len(modes), figsize=(6.5 * len(modes), 4.5), squeeze=False)
    for axis, mode in zip(axes[0], modes):
        lines: dict[str, list[tuple[int, float]]] = {}
        for row in rows:
            if row["mode"] == mode:
                lines.setdefault(row["impl"], []).append((int(row["shape"].split("x")[1]), row["tokens_per_s"]))
        for impl, points in sorted(lines.items()):
            points.sort()
            axis.plot([p[0] for p in points], [p[1] for p in points], label=impl, **STYLE[impl.split("-")[0]])
        axis.set_xscale("log", base=2)
        axis.set_xlabel("sequence length L")
        axis.set_ylabel("tokens/s")
        axis.set_ylim(bottom=0)
        axis.set_title(f"{mode}{': ' + args.title if args.title else ''}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
