"""Tokens per second of DebertaTokenizer (pure Python) and DebertaTokenizerFast on a few MB of text.

    python benchmarks/bench_tokenizers.py [--mb 4] [--doc-chars 2000]

The text is built offline from the Python standard library's own source files (code, comments, docstrings),
cut into documents of about --doc-chars characters. Every measurement starts from a freshly loaded tokenizer,
so the pure-Python BPE cache starts cold. "single" calls the tokenizer once per document, "batch" once on
batches of 256 documents.

With `transformers` importable (it is not a dependency: e.g. `/path/to/venv-with-transformers/bin/python
benchmarks/bench_tokenizers.py`), the table also has Hugging Face's DebertaTokenizer (the pure-Python GPT-2
BPE that is the yardstick for the slow tokenizer) and DebertaTokenizerFast on the same files.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from deberta_common import DebertaTokenizer, DebertaTokenizerFast  # noqa: E402

VOCAB_DIR = os.path.join(ROOT, "tests", "fixtures", "gpt2")
BATCH = 256


def corpus(megabytes: float, doc_chars: int) -> list[str]:
    """Documents cut from the standard library's .py files, in a fixed order, up to `megabytes` of text."""
    stdlib = sysconfig.get_paths()["stdlib"]
    budget = int(megabytes * 1e6)
    text: list[str] = []
    size = 0
    for folder, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "test", "__pycache__"))
        for name in sorted(files):
            if name.endswith(".py") and size < budget:
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
                    chunk = handle.read()[: budget - size]
                text.append(chunk)
                size += len(chunk)
    joined = "".join(text)
    return [joined[i : i + doc_chars] for i in range(0, len(joined), doc_chars)]


def measure(make, docs: list[str], batched: bool) -> tuple[float, int]:
    tokenizer = make()
    start = time.perf_counter()
    tokens = 0
    if batched:
        for i in range(0, len(docs), BATCH):
            tokens += sum(map(len, tokenizer(docs[i : i + BATCH], add_special_tokens=False)["input_ids"]))
    else:
        for doc in docs:
            tokens += len(tokenizer(doc, add_special_tokens=False)["input_ids"])
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=4.0, help="megabytes of text (default 4)")
    parser.add_argument("--doc-chars", type=int, default=2000, help="characters per document (default 2000)")
    args = parser.parse_args()
    docs = corpus(args.mb, args.doc_chars)
    chars = sum(map(len, docs))
    print(f"{chars / 1e6:.2f} M characters in {len(docs)} documents from {sysconfig.get_paths()['stdlib']}")

    candidates = [
        ("deberta-zoo DebertaTokenizer", lambda: DebertaTokenizer.from_pretrained(VOCAB_DIR)),
        ("deberta-zoo DebertaTokenizerFast", lambda: DebertaTokenizerFast.from_pretrained(VOCAB_DIR)),
    ]
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        vocab, merges = os.path.join(VOCAB_DIR, "vocab.json"), os.path.join(VOCAB_DIR, "merges.txt")
        candidates += [
            (f"transformers {transformers.__version__} DebertaTokenizer",
             lambda: transformers.DebertaTokenizer(vocab, merges)),
            (f"transformers {transformers.__version__} DebertaTokenizerFast",
             lambda: transformers.DebertaTokenizerFast(vocab, merges)),
        ]  # fmt: skip
    except ImportError:
        pass

    print(f"\n| {'tokenizer':<44} | {'mode':<6} | {'tokens':>9} | {'seconds':>7} | {'tokens/s':>10} |")
    print(f"|{'-' * 46}|{'-' * 8}|{'-' * 11}|{'-' * 9}|{'-' * 12}|")
    counts = set()
    for name, make in candidates:
        for batched in (False, True):
            seconds, tokens = measure(make, docs, batched)
            counts.add(tokens)
            mode = "batch" if batched else "single"
            print(f"| {name:<44} | {mode:<6} | {tokens:>9} | {seconds:>7.2f} | {tokens / seconds:>10,.0f} |")
    if len(counts) != 1:
        print(f"\nWARNING: the tokenizers disagree on the number of tokens: {sorted(counts)}")


if __name__ == "__main__":
    main()
