#!/bin/sh
# The GPU rows of docs/performance.md in as few device minutes as possible, most important first; for one
# H100 from the `device` tool (PyTorch and transformers installed there, no TensorFlow, no network):
#
#   sh benchmarks/gpu.sh eager      # agreement.py, then eager bf16 inference and training, fp32 inference (est. 4 min)
#   sh benchmarks/gpu.sh compile    # torch.compile bf16 inference, ours and the reference; agreement.py --compile
#
# Tables go to stdout and, with every row as it is measured, to $OUT (the device tool's result folder), so
# that a run cut short keeps what it measured. To try the script on a CPU first, with small shapes:
#   DEVICE=cpu SHAPES=1x128 TRAIN_SHAPES=1x128 AGREEMENT_SHAPE=2x64 REPEATS=1 OUT=/tmp/gpu \
#     PYTHON=benchmarks/.venv-ref/bin/python sh benchmarks/gpu.sh eager
set -u
stage=${1:?usage: gpu.sh eager|compile}
DEVICE=${DEVICE:-cuda}
SHAPES=${SHAPES:-32x128,16x512,4x2048}         # the issue's inference shapes
TRAIN_SHAPES=${TRAIN_SHAPES:-16x512,4x2048}    # its training shapes
REPEATS=${REPEATS:-10}
AGREEMENT_SHAPE=${AGREEMENT_SHAPE:-4x512}
OUT=${OUT:-/tmp/deberta-gpu}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1

bench() {  # bench NAME ARGS...: one table, its rows also in $OUT/NAME.json
    name=$1
    shift
    echo "## $name"
    $PYTHON benchmarks/bench.py --device "$DEVICE" --repeats "$REPEATS" --timeout 300 --json "$OUT/$name.json" "$@"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
    $PYTHON -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
    case $stage in
    eager)
        $PYTHON benchmarks/agreement.py --device "$DEVICE" --shape "$AGREEMENT_SHAPE"
        bench infer-bf16 --dtype bfloat16 --shapes "$SHAPES" --impls bound-pt,ref-pt,ours-pt
        bench train-bf16 --dtype bfloat16 --mode train --shapes "$TRAIN_SHAPES" --impls ref-pt,ours-pt
        bench infer-fp32 --dtype float32 --shapes "$SHAPES" --impls bound-pt,ref-pt,ours-pt
        ;;
    compile)
        bench infer-bf16-compile --dtype bfloat16 --shapes "$SHAPES" --impls ref-pt-compile,ours-pt-compile
        $PYTHON benchmarks/agreement.py --device "$DEVICE" --shape "$AGREEMENT_SHAPE" --compile
        ;;
    *)
        echo "unknown stage $stage: eager or compile" >&2
        exit 2
        ;;
    esac
} 2>&1 | tee "$OUT/$stage.log"
