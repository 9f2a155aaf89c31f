"""Real tokens/s of a forward over sequences of mixed lengths: padded batches against packed rows.

    python benchmarks/packing.py                                  # 32 sequences of 16 .. 512 tokens, batches of 8
    benchmarks/.venv-ref/bin/python benchmarks/packing.py --impls ref-pt,ours-pt,ours-tf-xla --sequences 64

Layouts of the same sequences (deberta-base shape, random weights, as bench.py):
- padded: batches of --batch sequences in the order drawn, each padded to its longest (dynamic padding);
- sorted: the same after sorting by length (length bucketing: less padding, but batches of one length band);
- packed: `deberta_common.data.pack_sequences` into rows of --row tokens, --batch rows per call, with the
  (B, L, L) mask that keeps the sequences apart (ours only: the reference cannot take it).
"tokens/s" counts the sequences' tokens, not the padding; "positions" is what the model computed, padding
included. One subprocess per row, median of --repeats passes over all the batches after one warm-up pass
(which includes XLA's compilations, one per distinct batch shape).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

from bench import BASE_SHAPE, REPO, available, make_weights, timed, worker_arguments

LAYOUTS = ("padded", "sorted", "packed")


def draw_lengths(count: int, low: int, high: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).integers(low, high + 1, size=count).tolist()


def batches(lengths: list[int], layout: str, batch: int, row: int) -> list[dict[str, np.ndarray]]:
    """The numpy inputs of every call for `layout`."""
    from deberta_common.data import pack_sequences, pad_batch

    rng = np.random.default_rng(1)
    seqs = [rng.integers(5, BASE_SHAPE["vocab_size"], size=n).tolist() for n in lengths]
    if layout == "packed":
        packed, _ = pack_sequences(seqs, row, pad_token_id=0)
        return [{k: v[i : i + batch] for k, v in packed.items()} for i in range(0, len(packed["input_ids"]), batch)]
    if layout == "sorted":
        seqs = sorted(seqs, key=len)
    return [{"input_ids": pad_batch(seqs[i : i + batch], 0), "attention_mask": pad_batch([[1] * len(s) for s in
                                                                                          seqs[i : i + batch]], 0)}
            for i in range(0, len(seqs), batch)]


def worker(args: argparse.Namespace) -> None:
    if args.impl.startswith("ref-tf"):
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    calls = batches(draw_lengths(args.sequences, args.min_length, args.max_length, args.seed), args.layout,
                    args.batch, args.row)
    if "-pt" in args.impl:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        if args.impl.startswith("ours"):
            import deberta_pt

            model = deberta_pt.DebertaModel.from_pretrained(args.folder).eval()
        else:
            import transformers

            model = transformers.DebertaModel.from_pretrained(args.folder).eval()
        inputs = [{k: torch.from_numpy(v) for k, v in call.items()} for call in calls]

        def step():
            with torch.inference_mode():
                for call in inputs:
                    model(**call)
    else:
        import tensorflow as tf

        if args.impl.startswith("ours"):
            import deberta_tf

            model = deberta_tf.TFDebertaModel.from_pretrained(args.folder)
        else:
            import transformers

            model = transformers.TFDebertaModel.from_pretrained(args.folder, from_pt=True)
        forward = tf.function(lambda batch: model(batch, training=False).last_hidden_state,
                              jit_compile=args.impl.endswith("xla"))
        inputs = [{k: tf.constant(v) for k, v in call.items()} for call in calls]

        def step():
            for call in inputs:
                forward(call).numpy()

    times, peak, _ = timed(step, args.repeats, "cpu")
    print(json.dumps({"seconds": statistics.median(times), "peak_bytes": peak, "calls": len(calls),
                      "positions": sum(int(np.prod(c["input_ids"].shape)) for c in calls)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impls", default="ref-pt,ours-pt,ours-tf-xla")
    parser.add_argument("--sequences", type=int, default=32)
    parser.add_argument("--min-length", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8, help="sequences per padded call, rows per packed call")
    parser.add_argument("--row", type=int, default=512, help="tokens per packed row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=1800)
    worker_arguments(parser, "impl", "layout", "folder")
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    lengths = draw_lengths(args.sequences, args.min_length, args.max_length, args.seed)
    impls = [i for i in args.impls.split(",") if available(i)]
    print(f"# cpu float32, deberta-base shape, {args.sequences} sequences of {args.min_length} .. {args.max_length} "
          f"tokens ({sum(lengths)} in all), batches of {args.batch}, packed rows of {args.row}, median of "
          f"{args.repeats}; not importable here: {', '.join(i for i in args.impls.split(',') if i not in impls) or 'none'}")
    print("| impl | layout | calls | positions | tokens/s | peak MiB | speed vs ref-pt padded |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="deberta-packing-") as folder:
        make_weights(folder)
        baseline = None
        for impl in impls:
            for layout in LAYOUTS:
                if layout == "packed" and not impl.startswith("ours"):
                    continue
                cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--layout", layout, "--folder", folder,
                       *(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                         if k in ("sequences", "min_length", "max_length", "batch", "row", "seed", "repeats"))]
                env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
                run = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
                if run.returncode != 0:
                    print(f"| {impl} | {layout} | fails: {(run.stderr.strip().splitlines() or ['?'])[-1][:80]} |||||")
                    continue
                result = json.loads(run.stdout.strip().splitlines()[-1])
                speed = sum(lengths) / result["seconds"]
                if impl == "ref-pt" and layout == "padded":
                    baseline = speed
                ratio = f"{speed / baseline:.2f}x" if baseline else ""
                print(f"| {impl} | {layout} | {result['calls']} | {result['positions']} | {speed:.0f} | "
                      f"{result['peak_bytes'] / 2**20:.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
