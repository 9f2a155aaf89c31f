"""Throughput and peak memory of DeBERTa at the microsoft/deberta-base shape, ours against a reference.

    python benchmarks/bench.py                       # CPU, float32, inference, every implementation found
    python benchmarks/bench.py --mode train --shapes 8x128,2x512
    python benchmarks/bench.py --device cuda --dtype bfloat16 --impls ours-pt,ours-pt-compile,ref-pt,ref-pt-compile
    python benchmarks/bench.py --device cuda --dtype bfloat16 --impls ref-pt-graphs,ours-pt-graphs   # CUDA graphs
    python benchmarks/bench.py --device cuda --dtype bfloat16 --impls ref-pt,ours-pt,ours-pt-triton  # our kernel

Shape: 12 layers, hidden 768, 12 heads, relative attention c2p|p2c, span 512, vocab 50265, random weights.
Every measurement runs in a fresh subprocess (so peak memory is that run's own) on the same saved weights.
"peak MiB" is the first step's (tracing and compilation included), "later MiB" the peak of the timed steps after
it, both above the loaded model. The reference (Hugging Face transformers, PyTorch and TensorFlow; 4.57.6 here,
5.x on the GPU machine, which has no TensorFlow) is used only when importable: `benchmarks/setup_reference.sh`
makes a separate venv with it. Nothing here is imported by the library.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

BASE_SHAPE = dict(
    vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    max_position_embeddings=512, relative_attention=True, position_biased_input=False, pos_att_type="c2p|p2c",
    max_relative_positions=-1, type_vocab_size=0,
)
# The reference runs first in each row group so that ours can be printed with the ratio to it. "bound-pt" is
# not a model: only the per-token matrix multiplications every implementation must run (in_proj, attention
# output, feed-forward), on the same BLAS: no exact forward can beat its tokens/s. "bound-tf-graph" and
# "bound-tf-xla" run the same products with TensorFlow's kernels, in graph mode and compiled by XLA, whose CPU
# products are not TensorFlow's.
IMPLS = ("bound-pt", "bound-tf-graph", "bound-tf-xla", "ref-pt", "ref-pt-compile", "ref-tf-graph", "ref-tf-xla",
         "ours-pt", "ours-pt-compile", "ours-tf-graph", "ours-tf-xla")
# "ours-pt-triton": our PyTorch model with attn_implementation="triton" (its Triton kernels, GPUs only), eager.
# `torch.compile` modes by the impl's last word. "graphs" (CUDA graphs: one launch replays the whole forward)
# is named only on a GPU, `--impls ref-pt-graphs,ours-pt-graphs`; on a CPU it is the default mode.
COMPILE_MODES = {"compile": "default", "graphs": "reduce-overhead"}


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> None:
    """Start the peak-RSS count anew (Linux: writing 5 to clear_refs resets VmHWM)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(step, repeats: int, device: str) -> tuple[list, int, int]:
    """Run `step` once (warm-up, tracing, compilation), then `repeats` times: the timed runs' seconds, and the peak
    memory of the first run and of the later ones, both above what the process held before the first (the loaded
    model): resident set on CPU, `torch.cuda.max_memory_allocated` on GPU."""
    if device == "cuda":
        import torch

        reset, current, peak = torch.cuda.reset_peak_memory_stats, torch.cuda.memory_allocated, \
            torch.cuda.max_memory_allocated
    else:
        reset, current, peak = reset_peak_rss, current_rss_bytes, peak_rss_bytes
    reset()
    base = current()
    step()
    first = peak() - base
    reset()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times, first, peak() - base


# ----------------------------------------------------------------------------- one measurement (subprocess)
def run_pt(impl: str, folder: str, batch: int, length: int, mode: str, device: str, dtype: str, repeats: int):
    import torch

    torch.manual_seed(0)
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    torch_dtype = getattr(torch, dtype)
    if impl.startswith("ours"):
        import deberta_pt

        cls = deberta_pt.DebertaForMaskedLM if mode == "train" else deberta_pt.DebertaModel
        model = cls.from_pretrained(folder, **({"attn_implementation": "triton"} if impl.endswith("triton") else {}))
    else:
        import transformers

        cls = transformers.DebertaForMaskedLM if mode == "train" else transformers.DebertaModel
        model = cls.from_pretrained(folder)
    model.to(device=device, dtype=torch_dtype)
    ids = torch.randint(5, BASE_SHAPE["vocab_size"], (batch, length), device=device)
    mask = torch.ones(batch, length, dtype=torch.long, device=device)
    labels = torch.where(torch.rand(batch, length, device=device) < 0.15, ids, -100)
    compile_mode = COMPILE_MODES.get(impl.rsplit("-", 1)[-1])
    fn = torch.compile(model, mode=compile_mode) if compile_mode else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5) if mode == "train" else None

    def step():
        if mode == "train":
            model.train()
            out = fn(input_ids=ids, attention_mask=mask, labels=labels)
            out.loss.backward() if hasattr(out, "loss") else out[0].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            model.eval()
            with torch.inference_mode():
                fn(input_ids=ids, attention_mask=mask)
        if device == "cuda":
            torch.cuda.synchronize()

    return timed(step, repeats, device)


def run_bound(impl: str, folder: str, batch: int, length: int, mode: str, device: str, dtype: str, repeats: int):
    """The dense layers of every layer of the encoder at this shape, and nothing else (inference only)."""
    import torch

    if mode != "infer":
        raise SystemExit(f"{impl} measures inference only")
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    hidden, inner = BASE_SHAPE["hidden_size"], BASE_SHAPE["intermediate_size"]
    kind = dict(device=device, dtype=getattr(torch, dtype))
    layers = [(torch.randn(3 * hidden, hidden, **kind), torch.randn(hidden, hidden, **kind),
               torch.randn(inner, hidden, **kind), torch.randn(hidden, inner, **kind))
              for _ in range(BASE_SHAPE["num_hidden_layers"])]
    x = torch.randn(batch * length, hidden, **kind)

    def step():
        with torch.inference_mode():
            for qkv, out, up, down in layers:
                torch.mm(x, qkv.T)
                torch.mm(x, out.T)
                torch.mm(torch.mm(x, up.T), down.T)
        if device == "cuda":
            torch.cuda.synchronize()

    return timed(step, repeats, device)


def run_bound_tf(impl: str, folder: str, batch: int, length: int, mode: str, device: str, dtype: str, repeats: int):
    """`run_bound`'s products with TensorFlow, each layer's input the previous layer's output (so that XLA
    computes every product), in graph mode or compiled by XLA."""
    import tensorflow as tf

    if mode != "infer" or dtype != "float32":
        raise SystemExit(f"{impl} measures float32 inference only")
    hidden, inner = BASE_SHAPE["hidden_size"], BASE_SHAPE["intermediate_size"]
    random = tf.random.Generator.from_seed(0)
    layers = [(random.normal((hidden, 3 * hidden)), random.normal((hidden, hidden)) * 0.02,
               random.normal((hidden, inner)) * 0.02, random.normal((inner, hidden)) * 0.02)
              for _ in range(BASE_SHAPE["num_hidden_layers"])]
    x = random.normal((batch * length, hidden))

    @tf.function(jit_compile=impl.endswith("xla"))
    def step():
        h = x
        for qkv, out, up, down in layers:
            h = tf.reduce_sum(tf.reshape(tf.matmul(h, qkv), (-1, 3, hidden)), axis=1) * 0.02
            h = tf.matmul(tf.matmul(tf.matmul(h, out), up), down)
        return h

    return timed(lambda: step().numpy(), repeats, device)


def run_tf(impl: str, folder: str, batch: int, length: int, mode: str, device: str, dtype: str, repeats: int):
    import numpy as np
    import tensorflow as tf

    if dtype != "float32":
        import keras

        keras.mixed_precision.set_global_policy("mixed_" + dtype)
    if impl.startswith("ours"):
        import deberta_tf

        cls = deberta_tf.TFDebertaForMaskedLM if mode == "train" else deberta_tf.TFDebertaModel
        model = cls.from_pretrained(folder)
    else:
        import transformers

        cls = transformers.TFDebertaForMaskedLM if mode == "train" else transformers.TFDebertaModel
        model = cls.from_pretrained(folder, from_pt=True)
    rng = np.random.default_rng(0)
    ids = tf.constant(rng.integers(5, BASE_SHAPE["vocab_size"], size=(batch, length)), dtype=tf.int32)
    mask = tf.ones((batch, length), dtype=tf.int32)
    labels = tf.where(tf.random.uniform((batch, length)) < 0.15, ids, -100)
    jit = impl.endswith("xla")
    optimizer = tf.keras.optimizers.Adam(1e-5) if impl.startswith("ref") else None
    if mode == "train" and impl.startswith("ours"):
        import keras

        optimizer = keras.optimizers.AdamW(1e-5)

    @tf.function(jit_compile=jit)
    def infer():
        return model({"input_ids": ids, "attention_mask": mask}, training=False)[0]

    @tf.function(jit_compile=jit)
    def train():
        with tf.GradientTape() as tape:
            out = model({"input_ids": ids, "attention_mask": mask, "labels": labels}, training=True)
            loss = tf.reduce_mean(out["loss"])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    fn = train if mode == "train" else infer
    return timed(lambda: fn().numpy(), repeats, device)


def worker(args: argparse.Namespace) -> None:
    if args.impl.startswith("ref-tf"):
        os.environ["TF_USE_LEGACY_KERAS"] = "1"  # the reference's TensorFlow models need Keras 2 (tf-keras)
    if args.relative_block:
        from deberta_common import rules

        rules.RELATIVE_BLOCK = args.relative_block  # read by our attention layers when they are built
    if args.triton_blocks:
        from deberta_pt import triton_attention

        triton_attention.BLOCK_M, triton_attention.BLOCK_N, triton_attention.NUM_WARPS = (
            int(x) for x in args.triton_blocks.split("x"))
    batch, length = (int(x) for x in args.shape.split("x"))
    runners = {"bound-pt": run_bound, "bound-tf": run_bound_tf, "ours-pt": run_pt, "ref-pt": run_pt}
    runner = runners.get("-".join(args.impl.split("-")[:2]), run_tf)
    times, peak, later = runner(args.impl, args.folder, batch, length, args.mode, args.device, args.dtype,
                                args.repeats)
    print(json.dumps({"tokens_per_s": batch * length / statistics.median(times), "peak_bytes": peak,
                      "later_peak_bytes": later}))


# ----------------------------------------------------------------------------- the table (parent process)
def available(impl: str) -> bool:
    def importable(name: str) -> bool:
        from importlib.util import find_spec

        return find_spec(name) is not None

    needs = {"bound-pt": ["torch"], "bound-tf": ["tensorflow"], "ours-pt": ["torch"], "ours-tf": ["tensorflow"],
             "ref-pt": ["torch", "transformers"], "ref-tf": ["tensorflow", "transformers", "tf_keras"]}
    key = "-".join(impl.split("-")[:2])
    return all(importable(n) for n in needs[key])


def make_weights(folder: str) -> None:
    import torch

    import deberta_pt
    from deberta_common import DebertaConfig

    torch.manual_seed(0)
    deberta_pt.DebertaForMaskedLM(DebertaConfig(**BASE_SHAPE)).save_pretrained(folder)


def print_table(args: argparse.Namespace, folder: str, shapes: list, impls: list, skipped: list, modes: tuple) -> None:
    """One subprocess per (mode, shape, implementation) on the weights in `folder`; a markdown row each. With
    --rounds, the implementations of a shape run that many times in turn (reference, ours, reference, ours, ...),
    and a second table gives each ratio of speeds over the rounds: on a machine whose speed drifts, the ratio of
    one round moves with it."""
    rows = []
    speed_ratios = {}  # (mode, impl, shape) -> ours / reference in each round
    block = f"; our relative blocks of {args.relative_block}" if args.relative_block else ""
    block += f"; Triton blocks (queries x keys x warps) {args.triton_blocks}" if args.triton_blocks else ""
    print(f"# {args.device} {args.dtype}, deberta-base shape, median of {args.repeats}{block}; "
          f"not importable here: {', '.join(skipped) or 'none'}")
    print("| mode | impl | shape | tokens/s | peak MiB | later MiB | speed vs ref | memory vs ref | later vs ref |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, shape, _ in itertools.product(modes, shapes, range(args.rounds)):
        results = {}
        for impl in impls:
            if impl.startswith("bound") and mode != "infer":
                continue
            if impl.startswith("bound-tf") and args.dtype != "float32":
                continue
            cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--shape", shape, "--folder", folder,
                   "--mode", mode, "--device", args.device, "--dtype", args.dtype, "--repeats", str(args.repeats),
                   "--relative-block", str(args.relative_block), "--triton-blocks", args.triton_blocks]
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
            try:
                run = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
                result = json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 else {
                    "error": (run.stderr.strip().splitlines() or ["failed"])[-1][:80]}
            except subprocess.TimeoutExpired:
                result = {"error": f"timed out after {args.timeout}s"}
            results[impl] = result
            ref = results.get(impl.replace("ours", "ref").replace("tf-xla", "tf-graph").replace("-triton", ""))
            keys = ("tokens_per_s", "peak_bytes", "later_peak_bytes")
            ratios = [""] * 3
            if "tokens_per_s" in result and ref and "tokens_per_s" in ref and impl.startswith("ours"):
                ratios = [f"{result[k] / max(ref[k], 1):.2f}x" for k in keys]
                speed_ratios.setdefault((mode, impl, shape), []).append(result[keys[0]] / ref[keys[0]])
            if "tokens_per_s" in result:
                line = f"| {mode} | {impl} | {shape} | {result['tokens_per_s']:.0f} | " \
                       f"{result['peak_bytes'] / 2**20:.0f} | {result['later_peak_bytes'] / 2**20:.0f} | " \
                       f"{' | '.join(ratios)} |"
            else:
                line = f"| {mode} | {impl} | {shape} | fails: {result['error']} | | | | | |"
            print(line, flush=True)
            rows.append({"mode": mode, "impl": impl, "shape": shape, **result})
            if args.json:  # after every row, so that an interrupted sweep keeps what it measured
                with open(args.json, "w") as fh:
                    json.dump(rows, fh, indent=1)
    if args.rounds > 1:
        print(f"\n| mode | impl | shape | speed vs ref, median of {args.rounds} rounds | lowest | highest |")
        print("|---|---|---|---|---|---|")
        for (mode, impl, shape), values in speed_ratios.items():
            print(f"| {mode} | {impl} | {shape} | {statistics.median(values):.2f}x | {min(values):.2f}x | "
                  f"{max(values):.2f}x |")


def worker_arguments(parser: argparse.ArgumentParser, *names: str) -> None:
    """--worker and the --names a parent passes to its measuring subprocess, left out of --help."""
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in names:
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--mode", default="infer", choices=("infer", "train", "both"))
    parser.add_argument("--shapes", help="comma-separated BxL; default: L in 128..2048 at --token-budget")
    parser.add_argument("--token-budget", type=int, default=1024)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="run the implementations of a shape this many times "
                        "in turn; more than 1 adds a table of the ratios over the rounds")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per measurement")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--relative-block", type=int, default=0,
                        help="queries (keys) per block of our relative-position scores; 0: the library's own (256)")
    parser.add_argument("--triton-blocks", default="",
                        help="MxNxW: queries and keys per tile and warps per program of our Triton kernel "
                             "(ours-pt-triton); default: the library's own (64x64x4)")
    worker_arguments(parser, "impl", "shape", "folder")
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    shapes = args.shapes.split(",") if args.shapes else [
        f"{max(1, args.token_budget // n)}x{n}" for n in (128, 256, 512, 1024, 2048)]
    impls = [i for i in args.impls.split(",") if available(i)]
    skipped = [i for i in args.impls.split(",") if i not in impls]
    modes = ("infer", "train") if args.mode == "both" else (args.mode,)
    # the weights (~530 MB) go when the table is done, or when it is interrupted
    with tempfile.TemporaryDirectory(prefix="deberta-bench-") as folder:
        make_weights(folder)
        print_table(args, folder, shapes, impls, skipped, modes)


if __name__ == "__main__":
    main()
