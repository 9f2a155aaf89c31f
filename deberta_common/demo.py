"""`python -m deberta_common.demo` (also `deberta-demo`): fill-mask with the embedded checkpoint in both frameworks.

1. loads `deberta-zoo/tiny-mlm` (shipped inside the package, no download) in PyTorch and fills the [MASK]s of a
   few sentences (or of --text);
2. converts the checkpoint to TensorFlow with deberta-convert (outputs verified) into a temporary folder;
3. loads it with `TFDebertaForMaskedLM.from_pretrained` and runs the same sentences compiled with XLA
   (`tf.function(jit_compile=True)`);
4. prints both frameworks' top predictions side by side and their largest logit difference.

    python -m deberta_common.demo
    python -m deberta_common.demo --text "It is [MASK] to use." --text "Return the [MASK] of the list." --top-k 3
    python -m deberta_common.demo --pytorch-only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Optional, Sequence

import numpy as np

from .fill_mask import mask_positions, model_logits, predictions_from_logits

MODEL_NAME = "deberta-zoo/tiny-mlm"
# Sentences on which the tiny model gives sensible answers (docs/demo.md); none occurs in its training text.
DEFAULT_SENTENCES = (
    "The input must be a [MASK] of strings.",
    "The function returns [MASK] if the value is not found.",
    "The value must be greater [MASK] zero.",
    "This method is called [MASK] the object is created.",
)

def _xla_logits(model):
    """The Keras model's logits as one XLA-compiled function (traced once per input shape)."""
    import tensorflow as tf

    @tf.function(jit_compile=True, reduce_retracing=True)
    def logits(batch):
        return model(batch, training=False)["logits"]

    return logits


def _row_table(pt_rows: list[dict], tf_rows: Optional[list[dict]], width: int = 18) -> list[str]:
    header = f"    {'#':>2}  {'PyTorch':<{width}} {'score':>6}"
    if tf_rows is not None:
        header += f"   {'TensorFlow (XLA)':<{width}} {'score':>6}"
    lines = [header]
    for i, pt in enumerate(pt_rows):
        line = f"    {i + 1:>2}  {pt['token_str']!r:<{width}} {pt['score']:>6.3f}"
        if tf_rows is not None:
            tf_row = tf_rows[i]
            line += f"   {tf_row['token_str']!r:<{width}} {tf_row['score']:>6.3f}"
        lines.append(line)
    return lines


def run(sentences: Sequence[str], top_k: int = 5, pytorch_only: bool = False, model_name: str = MODEL_NAME,
        out=sys.stdout) -> dict:
    """Run the demo, printing to `out`; returns {"pytorch": predictions, "tensorflow": ..., "max_logit_diff": ...}."""
    start = time.perf_counter()

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    import torch

    from deberta_pt import DebertaForMaskedLM

    from .hub import resolve_checkpoint
    from .tokenization_fast import DebertaTokenizerFast

    folder = resolve_checkpoint(model_name)
    tokenizer = DebertaTokenizerFast.from_pretrained(folder)
    pt_model = DebertaForMaskedLM.from_pretrained(model_name)
    n_params = sum(p.numel() for p in pt_model.parameters())
    say(f"{model_name}: DeBERTa v1, {n_params / 1e6:.2f} M parameters, vocabulary {tokenizer.vocab_size} ({folder})")

    # One padded batch for all sentences: both frameworks see exactly the same inputs (and XLA compiles once).
    batch = tokenizer(list(sentences), padding=True, pad_to_multiple_of=16, return_tensors="np",
                      return_token_type_ids=False)
    batch = {k: np.asarray(v) for k, v in batch.items()}
    for row, sentence in zip(batch["input_ids"], sentences):
        try:
            mask_positions(tokenizer, row)
        except ValueError as err:
            raise ValueError(f"{sentence!r}: {err}") from None

    t0 = time.perf_counter()
    pt_logits = model_logits(pt_model, batch)
    say(f"PyTorch {torch.__version__}: {len(sentences)} sentences in {time.perf_counter() - t0:.2f} s")

    tf_logits = None
    verify_note = ""
    if not pytorch_only:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from conversion.convert import convert

        with tempfile.TemporaryDirectory(prefix="deberta-demo-") as tmp:
            t0 = time.perf_counter()
            log: list[str] = []
            tf_folder = convert(folder, os.path.join(tmp, "tf"), to="tf", log=log.append)
            verify_note = "; ".join(line.split(": ", 1)[-1] for line in log if line.startswith("verify "))
            say(f"deberta-convert --to tf: {time.perf_counter() - t0:.1f} s, verified ({verify_note})")

            import keras
            import tensorflow as tf

            from deberta_tf import TFDebertaForMaskedLM

            t0 = time.perf_counter()
            tf_model = TFDebertaForMaskedLM.from_pretrained(tf_folder)
            xla = _xla_logits(tf_model)
            tf_logits = model_logits(xla, {k: tf.constant(v) for k, v in batch.items()})
            say(f"TensorFlow {tf.__version__} / Keras {keras.__version__} with XLA: loaded and compiled in "
                f"{time.perf_counter() - t0:.1f} s")

    results: dict = {"pytorch": [], "tensorflow": [] if tf_logits is not None else None, "max_logit_diff": []}
    for i, sentence in enumerate(sentences):
        attention = batch["attention_mask"][i]
        pt_pred = predictions_from_logits(tokenizer, batch["input_ids"][i], pt_logits[i], top_k, attention)
        results["pytorch"].append(pt_pred)
        say()
        say(sentence)
        tf_pred = None
        if tf_logits is not None:
            tf_pred = predictions_from_logits(tokenizer, batch["input_ids"][i], tf_logits[i], top_k, attention)
            results["tensorflow"].append(tf_pred)
            valid = attention.astype(bool)
            diff = float(np.max(np.abs(pt_logits[i][valid] - tf_logits[i][valid])))
            results["max_logit_diff"].append(diff)
        for m, pt_rows in enumerate(pt_pred):
            if len(pt_pred) > 1:
                say(f"  [MASK] #{m + 1}")
            say(f"  -> {pt_rows[0]['sequence']}")
            for line in _row_table(pt_rows, tf_pred[m] if tf_pred is not None else None):
                say(line)
        if tf_pred is not None:
            same = [[r["token"] for r in rows] for rows in pt_pred] == [[r["token"] for r in rows] for rows in tf_pred]
            say(f"    largest |logit difference| PyTorch vs TensorFlow: {results['max_logit_diff'][-1]:.2e}"
                f" ({'same' if same else 'DIFFERENT'} top-{top_k})")
    say()
    say(f"done in {time.perf_counter() - start:.1f} s")
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deberta-demo",
        description="Fill-mask with the embedded tiny DeBERTa in PyTorch and, converted, in TensorFlow with XLA.",
    )
    parser.add_argument("--text", action="append",
                        help="a sentence with one or more [MASK] (repeat for several); default: a few examples")
    parser.add_argument("--top-k", type=int, default=5, help="predictions per [MASK] (default 5)")
    parser.add_argument("--pytorch-only", action="store_true", help="skip the conversion and TensorFlow")
    parser.add_argument("--model", default=MODEL_NAME,
                        help=f"checkpoint folder or embedded name (default {MODEL_NAME})")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")
    try:
        run(args.text or DEFAULT_SENTENCES, top_k=args.top_k, pytorch_only=args.pytorch_only, model_name=args.model)
    except (ValueError, OSError) as err:
        print(f"deberta-demo: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
