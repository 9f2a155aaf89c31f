"""DeBERTa's attention in one Triton kernel, for inference on a GPU (`attn_implementation="triton"`).

softmax(q k^T + c2p + p2c + key mask) v per tile of queries and keys, as FlashAttention does, with c2p and p2c
read from the (L, W) scores of each query (key) against the W position rows, which two products make first. The
(B, H, L, L) bias that the default path builds in several passes over memory (and that the reference gathers) is
never written. No dropout and no gradient: `DisentangledSelfAttention` calls it only where neither is needed.

Triton compiles it for NVIDIA and AMD GPUs; under `TRITON_INTERPRET=1` it runs on CPU tensors, which is how the
tests check it.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

# Where a query block's keys are all masked so far, the running maximum is this and not -inf (exp2(-inf - -inf)
# would be NaN); a later valid key outweighs it. Half of float32's minimum, as `mask_bias`.
MASKED = tl.constexpr(-1.7014118346046923e38)
LOG2E = tl.constexpr(1.4426950408889634)  # softmax in base 2: exp2 is the hardware's


@triton.jit
def _relative_attention_kernel(
    q_ptr, k_ptr, v_ptr, c2p_ptr, p2c_ptr, mask_ptr, out_ptr,
    q_strides0, q_strides1, q_strides2, q_strides3,
    k_strides0, k_strides1, k_strides2, k_strides3,
    v_strides0, v_strides1, v_strides2, v_strides3,
    c2p_strides0, c2p_strides1, c2p_strides2, c2p_strides3,
    p2c_strides0, p2c_strides1, p2c_strides2, p2c_strides3,
    mask_strides0, mask_strides1, mask_strides2,
    out_strides0, out_strides1, out_strides2, out_strides3,
    heads, length, width, offset, scale,
    HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, HAS_MASK: tl.constexpr, PAIRS: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):
    """One program: BLOCK_M queries of one (batch row, head) against every key, BLOCK_N keys at a time. The mask is
    (B, L, L): pairs where PAIRS, else the keys' mask with a query stride of 0."""
    batch = (tl.program_id(1) // heads).to(tl.int64)  # so that offsets past 2^31 elements do not wrap
    head = (tl.program_id(1) % heads).to(tl.int64)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, BLOCK_D)
    row_ok = rows < length
    dim_ok = dims < HEAD_DIM
    q_base = q_ptr + batch * q_strides0 + head * q_strides1
    k_base = k_ptr + batch * k_strides0 + head * k_strides1
    v_base = v_ptr + batch * v_strides0 + head * v_strides1
    q = tl.load(q_base + rows[:, None] * q_strides2 + dims[None, :] * q_strides3,
                mask=row_ok[:, None] & dim_ok[None, :], other=0.0)

    maximum = tl.full([BLOCK_M], float("-inf"), tl.float32)
    total = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start in range(0, length, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < length
        keys = tl.load(k_base + cols[None, :] * k_strides2 + dims[:, None] * k_strides3,
                       mask=col_ok[None, :] & dim_ok[:, None], other=0.0)  # (BLOCK_D, BLOCK_N)
        scores = tl.dot(q, keys, input_precision=PRECISION)
        if HAS_C2P:  # c2p[i, i - j + offset]: along j the columns are consecutive
            column = tl.minimum(tl.maximum(rows[:, None] - cols[None, :] + offset, 0), width - 1)
            pointers = c2p_ptr + batch * c2p_strides0 + head * c2p_strides1 + rows[:, None] * c2p_strides2
            scores += tl.load(pointers + column * c2p_strides3, mask=row_ok[:, None] & col_ok[None, :],
                              other=0.0).to(tl.float32)
        if HAS_P2C:  # p2c[j, i - j + offset], read as (keys, queries) so that consecutive queries are adjacent
            column = tl.minimum(tl.maximum(rows[None, :] - cols[:, None] + offset, 0), width - 1)
            pointers = p2c_ptr + batch * p2c_strides0 + head * p2c_strides1 + cols[:, None] * p2c_strides2
            scores += tl.trans(tl.load(pointers + column * p2c_strides3, mask=col_ok[:, None] & row_ok[None, :],
                                       other=0.0).to(tl.float32))
        scores *= scale * LOG2E
        if HAS_MASK and PAIRS:
            pointers = mask_ptr + batch * mask_strides0 + rows[:, None] * mask_strides1 + cols[None, :] * mask_strides2
            pair_ok = tl.load(pointers, mask=row_ok[:, None] & col_ok[None, :], other=0) != 0
            scores = tl.where(pair_ok, scores, MASKED)
        elif HAS_MASK:
            key_ok = tl.load(mask_ptr + batch * mask_strides0 + cols * mask_strides2, mask=col_ok, other=0) != 0
            scores = tl.where(key_ok[None, :], scores, MASKED)
        scores = tl.where(col_ok[None, :], scores, float("-inf"))
        new_maximum = tl.maximum(maximum, tl.max(scores, 1))
        weights = tl.exp2(scores - new_maximum[:, None])
        rescale = tl.exp2(maximum - new_maximum)
        total = total * rescale + tl.sum(weights, 1)
        values = tl.load(v_base + cols[:, None] * v_strides2 + dims[None, :] * v_strides3,
                         mask=col_ok[:, None] & dim_ok[None, :], other=0.0)
        acc = acc * rescale[:, None] + tl.dot(weights.to(values.dtype), values, input_precision=PRECISION)
        maximum = new_maximum

    out = acc / total[:, None]
    if HAS_MASK:  # padded queries give 0, as the default path; a query is a token where (i, i) is unmasked
        query_ok = tl.load(mask_ptr + batch * mask_strides0 + rows * (mask_strides1 + mask_strides2), mask=row_ok,
                           other=0) != 0
        out = tl.where(query_ok[:, None], out, 0.0)
    out_base = out_ptr + batch * out_strides0 + head * out_strides1
    tl.store(out_base + rows[:, None] * out_strides2 + dims[None, :] * out_strides3,
             out.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & dim_ok[None, :])


INTERPRETED = isinstance(_relative_attention_kernel, InterpretedFunction)
# Not tuned on a GPU yet: benchmarks/bench.py --triton-blocks sets them to compare
BLOCK_M = 64  # queries per program
BLOCK_N = 64  # keys per step
NUM_WARPS = 4


def runs_on(tensor: torch.Tensor) -> bool:
    """Whether the kernel can take this tensor: on a GPU, or anywhere under Triton's interpreter."""
    return tensor.is_cuda or INTERPRETED


def relative_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, c2p: Optional[torch.Tensor],
    p2c: Optional[torch.Tensor], mask: Optional[torch.Tensor], offset: int = 0, scale: float = 1.0,
) -> torch.Tensor:
    """(B, H, L, d) queries, keys and values -> (B, H, L, d), a view of a (B, L, H, d) buffer (so that merging the
    heads is free); the rows of padded queries are 0.

    scores[i, j] = (q_i . k_j + c2p[i, t] + p2c[j, t]) * scale, t = clamp(i - j + offset, 0, W - 1), in float32;
    c2p, p2c: (B, H, L, W) or None. mask: bool, (B, L) True for the keys that are tokens, or (B, L, L) True
    where query i may attend to key j (packed sequences), or None.
    """
    batch, heads, length, head_dim = query.shape
    out = query.new_empty(batch, length, heads, head_dim).transpose(1, 2)
    width = next((scores.shape[-1] for scores in (c2p, p2c) if scores is not None), 1)
    pairs = mask is not None and mask.dim() == 3
    if mask is not None:
        mask = (mask if pairs else mask[:, None, :].expand(batch, length, length)).view(torch.uint8)

    def strides(tensor: Optional[torch.Tensor], count: int) -> tuple:
        return tensor.stride() if tensor is not None else (0,) * count

    grid = (triton.cdiv(length, BLOCK_M), batch * heads)
    _relative_attention_kernel[grid](
        query, key, value, query if c2p is None else c2p, query if p2c is None else p2c,
        query if mask is None else mask, out,
        *query.stride(), *key.stride(), *value.stride(), *strides(c2p, 4), *strides(p2c, 4), *strides(mask, 3),
        *out.stride(), heads, length, width, offset, scale,
        HAS_C2P=c2p is not None, HAS_P2C=p2c is not None, HAS_MASK=mask is not None, PAIRS=pairs,
        HEAD_DIM=head_dim,
        BLOCK_D=max(16, triton.next_power_of_2(head_dim)), BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
        PRECISION="ieee" if query.dtype == torch.float32 else None,  # no TF32: float32 stays within 1e-5
        # float32 tiles pipelined three deep need 128 KiB of shared memory, more than many GPUs have (one: 48 KiB)
        num_stages=1 if query.dtype == torch.float32 else 3, num_warps=NUM_WARPS,
    )
    return out
