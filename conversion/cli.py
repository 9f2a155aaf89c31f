"""`deberta-convert SRC DST --to {pt,tf}`: move a DeBERTa checkpoint between PyTorch and TensorFlow files."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from .convert import FLOAT_DTYPES, HEADS, convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deberta-convert",
        description="Convert a DeBERTa checkpoint folder between PyTorch (model.safetensors, pytorch_model.bin) "
                    "and TensorFlow (tf_model.h5) files, and check that both give the same outputs.",
    )
    parser.add_argument("src", help="checkpoint folder: config.json plus weights (any format, sharded or not)")
    parser.add_argument("dst", help="output folder (created; must be empty or absent unless --overwrite)")
    parser.add_argument("--to", required=True, choices=("pt", "tf"), help="target framework")
    parser.add_argument("--format", choices=("safetensors", "bin", "h5"),
                        help="weight file format (default: safetensors for pt, h5 for tf)")
    parser.add_argument("--dtype", choices=FLOAT_DTYPES, help="cast floating-point weights (default: keep)")
    parser.add_argument("--model-class", default="auto", choices=("auto",) + HEADS,
                        help="which head to convert (default: from config architectures, else from the weight names)")
    parser.add_argument("--max-shard-size", default="2GB", help="largest weight file before sharding (default 2GB)")
    parser.add_argument("--no-verify", action="store_true", help="skip running both models on a test batch")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty destination")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        convert(
            args.src, args.dst, to=args.to, fmt=args.format, dtype=args.dtype, model_class=args.model_class,
            max_shard_size=args.max_shard_size, verify_outputs=not args.no_verify, overwrite=args.overwrite,
        )
    except KeyboardInterrupt:
        print("deberta-convert: interrupted; nothing was written to the destination", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        print(f"deberta-convert: error: {err}", file=sys.stderr)
        return 1
    return 0
