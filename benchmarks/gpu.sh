#!/bin/sh
# The GPU rows of docs/performance.md in as few device minutes as possible; for one H100 or H200 from the `device`
# tool (PyTorch and transformers installed there, no TensorFlow, no network). Name the steps to run, in order;
# `all` runs every step, the issue's targets first:
#
#   sh benchmarks/gpu.sh all
#   sh benchmarks/gpu.sh fp32 agreement-compile    # e.g. what a first call had no time left for
#
# Steps: agreement (agreement.py, eager), infer (bf16 inference at 32x128, 16x512, 4x2048 with the matmul bound),
# train (bf16 training steps at 16x512 and 4x2048), compile (torch.compile bf16 inference, ours and the reference),
# graphs (the same with mode="reduce-overhead", i.e. CUDA graphs), blocks (ours, bf16 inference and training at
# BLOCK_SHAPES with relative blocks of 512 and 1024 instead of 256: fewer launches, more products),
# fp32 (fp32 inference), agreement-compile (agreement.py --compile), profile (profile_pt.py: where our eager model's
# time goes, bf16 inference at 32x128 and training at 16x512 and 4x2048), triton (our Triton attention kernels,
# attn_implementation="triton": agreement.py --triton, then bf16 inference and training against the reference and
# our default, then inference with tiles of 128 queries and 8 warps), profile-triton (profile_pt.py on them:
# inference at 32x128 and 4x2048, training at 16x512).
#
# Tables go to stdout and, with every row as it is measured, to $OUT (the device tool's result folder), so
# that a run cut short keeps what it measured. To try the script on a CPU first, with small shapes:
#   DEVICE=cpu SHAPES=1x128 TRAIN_SHAPES=1x128 BLOCK_SHAPES=1x128 AGREEMENT_SHAPE=2x64 REPEATS=1 OUT=/tmp/gpu \
#     PYTHON=benchmarks/.venv-ref/bin/python sh benchmarks/gpu.sh all
# (on a 2-core CPU the steps graphs, compile, train and blocks took over 15 minutes; the triton steps run under
# Triton's interpreter there, whose training row of the deberta-base model alone took over ten minutes at 1x128)
set -u
[ $# -gt 0 ] || { echo "usage: gpu.sh all | STEP..." >&2; exit 2; }
DEVICE=${DEVICE:-cuda}
SHAPES=${SHAPES:-32x128,16x512,4x2048}         # the issue's inference shapes
TRAIN_SHAPES=${TRAIN_SHAPES:-16x512,4x2048}    # its training shapes
BLOCK_SHAPES=${BLOCK_SHAPES:-16x512,4x2048}    # those with more than one block of relative scores
REPEATS=${REPEATS:-10}
AGREEMENT_SHAPE=${AGREEMENT_SHAPE:-4x512}
OUT=${OUT:-/tmp/deberta-gpu}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1
[ "$*" = all ] && set -- agreement infer train compile graphs fp32 agreement-compile blocks profile triton profile-triton

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
    for step in "$@"; do
        echo "# step $step, $(date -u +%T)"
        case $step in
        agreement) $PYTHON benchmarks/agreement.py --device "$DEVICE" --shape "$AGREEMENT_SHAPE" ;;
        infer) bench infer-bf16 --dtype bfloat16 --shapes "$SHAPES" --impls ref-pt,ours-pt,bound-pt ;;
        train) bench train-bf16 --dtype bfloat16 --mode train --shapes "$TRAIN_SHAPES" --impls ref-pt,ours-pt ;;
        compile) bench infer-bf16-compile --dtype bfloat16 --shapes "$SHAPES" --impls ref-pt-compile,ours-pt-compile ;;
        graphs) bench infer-bf16-graphs --dtype bfloat16 --shapes "$SHAPES" --impls ref-pt-graphs,ours-pt-graphs ;;
        blocks) for block in 512 1024; do
                bench infer-bf16-block$block --dtype bfloat16 --shapes "$BLOCK_SHAPES" --impls ours-pt \
                    --relative-block $block
                bench train-bf16-block$block --dtype bfloat16 --mode train --shapes "$BLOCK_SHAPES" --impls ours-pt \
                    --relative-block $block
            done ;;
        fp32) bench infer-fp32 --dtype float32 --shapes "$SHAPES" --impls ref-pt,ours-pt,bound-pt ;;
        agreement-compile) $PYTHON benchmarks/agreement.py --device "$DEVICE" --shape "$AGREEMENT_SHAPE" --compile ;;
        triton) $PYTHON benchmarks/agreement.py --device "$DEVICE" --shape "$AGREEMENT_SHAPE" --triton
                bench infer-bf16-triton --dtype bfloat16 --shapes "$SHAPES" --impls ref-pt,ours-pt,ours-pt-triton
                bench train-bf16-triton --dtype bfloat16 --mode train --shapes "$TRAIN_SHAPES" \
                    --impls ref-pt,ours-pt,ours-pt-triton
                bench infer-bf16-triton-128 --dtype bfloat16 --shapes "$SHAPES" --impls ours-pt-triton \
                    --triton-blocks 128x64x8 ;;
        profile-triton) $PYTHON benchmarks/profile_pt.py --device "$DEVICE" --dtype bfloat16 --top 10 \
            --attn-implementation triton --cases "${PROFILE_CASES:-infer:32x128,infer:4x2048,train:16x512}" ;;
        profile) $PYTHON benchmarks/profile_pt.py --device "$DEVICE" --dtype bfloat16 --top 14 \
            --cases "${PROFILE_CASES:-infer:32x128,train:16x512,train:4x2048}" ;;
        *) echo "unknown step $step" >&2 ;;
        esac
    done
    echo "# done $(date -u +%T)"
} 2>&1 | tee -a "$OUT/gpu.log"
