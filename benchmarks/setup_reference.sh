#!/usr/bin/env bash
# A separate venv with the reference DeBERTa (Hugging Face transformers 4.x, PyTorch and TensorFlow)
# beside this library, for benchmarks/bench.py only. The library itself never imports transformers.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv benchmarks/.venv-ref
benchmarks/.venv-ref/bin/pip install --upgrade pip
benchmarks/.venv-ref/bin/pip install torch==2.13.0
benchmarks/.venv-ref/bin/pip install tensorflow==2.21.0 "tf-keras~=2.21.0" transformers==4.57.6 matplotlib
benchmarks/.venv-ref/bin/pip install -e .
echo "now: benchmarks/.venv-ref/bin/python benchmarks/bench.py"
