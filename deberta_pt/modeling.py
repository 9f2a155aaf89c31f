"""DeBERTa (v1) in PyTorch: embeddings, disentangled attention, encoder, heads.

`deberta_tf/modeling.py` mirrors this file class for class and name for name; attribute names are the
checkpoint weight names. The two autograd functions (`SavedProbabilitiesAttention`, `CrossEntropyFromLogits`),
`WeightCache` (with `DisentangledSelfAttention.cached_position_layers` and `DebertaEncoder.relative_index`),
the in-place activations (`ACT2FN_INPLACE`) and `dense` (CPU products by oneDNN) have no TensorFlow counterpart:
they change only what PyTorch keeps (for the backward; between calls) or allocates, or which kernel multiplies,
not what is computed.
Shapes: B batch, L sequence length, H heads, d head size, R = config.attention_span.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.fx.experimental.symbolic_shapes import has_static_value
from torch.utils.checkpoint import checkpoint

from deberta_common import rules
from deberta_common.config import DebertaConfig
from deberta_common.outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from . import native
from .pretrained import DebertaPreTrainedModel

def _register_output_pytrees() -> None:
    """Let torch.export / torch.compile / torch.onnx see through the output containers."""
    from torch.utils import _pytree

    for cls in (BaseModelOutput, MaskedLMOutput, MultipleChoiceModelOutput, QuestionAnsweringModelOutput,
                SequenceClassifierOutput, TokenClassifierOutput):
        _pytree.register_pytree_node(
            cls,
            lambda output: (list(output.values()), tuple(output.keys())),
            lambda values, keys, cls=cls: cls(**dict(zip(keys, values))),
            serialized_type_name=f"deberta_common.outputs.{cls.__name__}",
        )


_register_output_pytrees()

# For a bias that needs a gradient (see `DisentangledSelfAttention.sdpa_attention`): the devices where
# `SavedProbabilitiesAttention` runs, and elsewhere the SDPA kernels that give the bias a gradient.
SAVED_PROBABILITIES_DEVICES = ("cpu",)
BIAS_GRADIENT_BACKENDS = [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]

ACT2FN = {
    "gelu": nn.GELU(),
    "gelu_python": nn.GELU(),
    "gelu_new": nn.GELU(approximate="tanh"),
    "gelu_fast": nn.GELU(approximate="tanh"),
    "relu": nn.ReLU(),
    "tanh": nn.Tanh(),
    "sigmoid": nn.Sigmoid(),
    "silu": nn.SiLU(),
    "swish": nn.SiLU(),
    "linear": nn.Identity(),
}
# The same, in place (`DebertaIntermediate`, without autograd).
ACT2FN_INPLACE = {
    "gelu": torch.ops.aten.gelu_,
    "gelu_python": torch.ops.aten.gelu_,
    "gelu_new": functools.partial(torch.ops.aten.gelu_, approximate="tanh"),
    "gelu_fast": functools.partial(torch.ops.aten.gelu_, approximate="tanh"),
    "relu": torch.relu_,
    "tanh": torch.tanh_,
    "sigmoid": torch.sigmoid_,
    "silu": functools.partial(F.silu, inplace=True),
    "swish": functools.partial(F.silu, inplace=True),
    "linear": lambda x: x,
}


def forward_hooked(*modules: nn.Module) -> bool:
    """Whether a forward hook or pre-hook (of one of the modules, or a global one) may see their inputs or outputs."""
    kinds = ("_forward_hooks", "_forward_pre_hooks")
    return any(getattr(nn.modules.module, f"_global{kind}", True) for kind in kinds) or any(
        getattr(module, kind, True) for module in modules for kind in kinds
    )


def dense(layer: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """layer(hidden_states); for a plain nn.Linear that no hook watches, by `native.linear` where that applies (CPU
    float32 inference)."""
    if type(layer) is nn.Linear and not forward_hooked(layer):
        output = native.linear(hidden_states, layer.weight, layer.bias)
        if output is not None:
            return output
    return layer(hidden_states)


def build_relative_position(length: int, span: int, max_relative_positions: int, device: torch.device) -> torch.Tensor:
    """(2L,) rows of `rel_embeddings` for the relative distances -L .. L-1 of a sequence of length L.

    Distance i - j uses row clamp(i - j + span, 0, 2*span - 1) + R - span (the original DeBERTa rule, R =
    max_relative_positions). Laying the rows out for every distance a length-L sequence has lets
    `relative_band` turn position scores into (L, L) with a reshape instead of a gather.
    Built once per forward and shared by every layer, batch row and head.
    """
    distance = torch.arange(2 * length, device=device) - length
    return (distance + span).clamp(0, 2 * span - 1) + (max_relative_positions - span)


def relative_band(scores: torch.Tensor, length: int, transposed: bool) -> torch.Tensor:
    """(..., n, n + m) scores of a block of n queries (c2p) or keys (p2c) against its window of relative
    positions (`rules.relative_windows`) -> (..., n, m) scores against the m = `length` keys the window covers,
    or (..., m, n) against the queries when transposed; without a gather.

    transposed=False (c2p, position rows reversed): out[a, j] = scores[a, n - 1 - a + j].
    transposed=True (p2c): out[i, b] = scores[b, n + i - b].
    Both pick a band of the row-major (n * (n + m)) buffer: element (a, j) of an (n, n + m - 1) view that
    starts at `offset` is scores.flat[offset + a * (n + m - 1) + j].
    """
    *batch, rows, width = scores.shape
    offset = rows if transposed else rows - 1
    flat = scores.reshape(*batch, rows * width)[..., offset : offset + rows * (width - 1)]
    band = flat.reshape(*batch, rows, width - 1)[..., :length]
    return band.transpose(-1, -2) if transposed else band


def position_scores(content: torch.Tensor, positions: torch.Tensor, workspace: Optional[dict] = None) -> torch.Tensor:
    """(B, H, n, d) queries or keys x (H, w, d) position keys or queries -> (B, H, n, w) dot products, in the
    workspace's "products" buffer where one is given (`workspace_buffer`; dead once the block is written).

    One (H, B n, d) @ (H, d, w) product: broadcasting the positions over the batch would copy them B times.
    """
    batch, heads, rows, _ = content.shape
    flat = content.transpose(0, 1).reshape(heads, batch * rows, -1)
    out = None
    if workspace is not None and not torch.is_autocast_enabled(flat.device.type):  # out= would bypass autocast
        out = workspace_buffer((heads, batch * rows, positions.shape[1]), flat, workspace, "products")
    return torch.matmul(flat, positions.transpose(-1, -2), out=out).view(heads, batch, rows, -1).transpose(0, 1)


def edge_rows(positions: torch.Tensor) -> torch.Tensor:
    """(H, 2L, d) position rows -> the view (H, 2, d) of the first and the last, which every distance beyond the
    span reads."""
    return positions[:, :: positions.shape[1] - 1]


def span_edges(content: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(B, H, L, d) queries or keys x (H, 2L, d) position rows -> (B, H, L, 2): the scores against `edge_rows`.
    One product for all blocks."""
    return position_scores(content, edge_rows(positions))


def beyond_span(edge: torch.Tensor, transposed: bool) -> torch.Tensor:
    """(B, H, n, 1) scores of a block's queries (keys) against the first or last position row -> (B, H, n, 1),
    or (B, H, 1, n) when transposed: the one score each has against every position beyond the span, to
    broadcast."""
    return edge.transpose(-1, -2) if transposed else edge


def block_region(scores: torch.Tensor, start: int, stop: int, first: int, last: int, transposed: bool) -> torch.Tensor:
    """The view of (B, H, L, L) scores that holds the block start:stop of queries (c2p) against the keys
    first:last, (B, H, n, p); or, transposed (p2c), the queries first:last against the block of keys, (B, H, p, n)."""
    if transposed:
        return scores[:, :, first:last, start:stop]
    return scores[:, :, start:stop, first:last]


def mask_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, 1, L) or (B, 1, L, L) bool -> the float32 additive bias of the same shape: 0 where True, half the
    finite minimum of `dtype` (of float32 for float64) where False, so that rows with no valid key stay NaN-free
    in that dtype."""
    return torch.where(mask, 0.0, max(torch.finfo(dtype).min, torch.finfo(torch.float32).min) / 2)


def workspace_buffer(shape: tuple, like: torch.Tensor, workspace: Optional[dict], name: str = "scores") -> torch.Tensor:
    """An uninitialised buffer of `shape` with `like`'s dtype and device: a view of the workspace's buffer `name` when
    it has one large enough, else a new one (kept there for the next use when a workspace is given).
    Reused buffers keep their pages mapped: a new (B, H, L, L) buffer per layer cost 12 % of a 2 x 512 forward on
    CPU, new position products per block another 4 %."""
    if workspace is None:
        return like.new_empty(shape)
    size = math.prod(shape)
    buffer = workspace.get(name)
    if buffer is None or buffer.numel() < size or buffer.dtype != like.dtype or buffer.device != like.device:
        buffer = workspace[name] = like.new_empty(size)
    return buffer[:size].view(shape)


def window_edges(content: torch.Tensor, positions: torch.Tensor, windows: list) -> Optional[torch.Tensor]:
    """`span_edges` where some block of `windows` (`rules.relative_windows`) has keys (queries) beyond the span,
    whose distances all read the first or last position row; else None."""
    length = content.shape[-2]
    if any(inner_start > 0 or inner_stop < length for _, _, inner_start, inner_stop, _, _ in windows):
        return span_edges(content, positions)
    return None


def block_pieces(
    content: torch.Tensor, positions: torch.Tensor, window: tuple, edges: Optional[torch.Tensor], transposed: bool,
    workspace: Optional[dict] = None,
) -> list:
    """The scores of one block of `rules.relative_windows` as (first, last, value) over the keys (c2p) or, transposed,
    the queries (p2c) first:last: the band over the inner ones ((B, H, n, m), or (B, H, m, n)) and, beyond the span,
    one score per query (key) and side (`beyond_span`, to broadcast; `window_edges`' edges)."""
    start, stop, inner_start, inner_stop, lo, hi = window
    length = content.shape[-2]
    band = relative_band(
        position_scores(content[:, :, start:stop], positions[:, lo:hi], workspace), inner_stop - inner_start,
        transposed,
    )
    pieces = [(inner_start, inner_stop, band)]
    if inner_start > 0:
        pieces.insert(0, (0, inner_start, beyond_span(edges[:, :, start:stop, :1], transposed)))
    if inner_stop < length:
        pieces.append((inner_stop, length, beyond_span(edges[:, :, start:stop, 1:], transposed)))
    return pieces


def add_relative_scores(
    score: Optional[torch.Tensor], content: torch.Tensor, positions: torch.Tensor, windows: list, transposed: bool,
    mask: Optional[torch.Tensor] = None, workspace: Optional[dict] = None,
) -> torch.Tensor:
    """score + c2p or, transposed, + p2c (see `DisentangledSelfAttention.relative_scores`), block by block of
    `windows` (`rules.relative_windows`), written in place into score or into a new buffer when score is None
    (`workspace_buffer`, from the workspace when one is given).
    A new buffer starts from `mask_bias(mask)` where a mask is given, added with the first write of each block
    (a pass of its own over the (B, H, L, L) buffer would cost as much as the write). p2c's band, read transposed,
    is added by `native.add_transposed` where it applies (float32 on CPU; 2.5 times as fast as PyTorch's add alone)."""
    length = content.shape[-2]
    fresh = score is None
    bias = None
    edges = window_edges(content, positions, windows)
    for window in windows:
        start, stop = window[:2]
        for first, last, value in block_pieces(content, positions, window, edges, transposed, workspace):
            if score is None:
                # the dtype of the products, which autocast may lower
                score = workspace_buffer((*content.shape[:-2], length, length), value, workspace)
                if mask is not None:
                    bias = mask_bias(mask, score.dtype).expand(*mask.shape[:-2], length, length)
            target = block_region(score, start, stop, first, last, transposed)
            if bias is not None and torch.compiler.is_compiling():  # Dynamo takes no out= into a view
                target.copy_(value).add_(block_region(bias, start, stop, first, last, transposed))
            elif bias is not None:
                torch.add(value, block_region(bias, start, stop, first, last, transposed), out=target)
            elif fresh:
                target.copy_(value)
            elif not (transposed and native.add_transposed(target, value)):
                target.add_(value)
    return score


def concatenated_relative_scores(
    content: torch.Tensor, positions: torch.Tensor, windows: list, transposed: bool
) -> torch.Tensor:
    """c2p or, transposed, p2c (as `add_relative_scores` writes them) as a new (B, H, L, L) tensor: each block's
    band with the scores beyond the span beside it, the blocks concatenated; no tensor written in place. For
    `torch.compile`, which turns writes into slices of a buffer into a select per block over the whole buffer."""
    edges = window_edges(content, positions, windows)
    axis = -2 if transposed else -1  # of the keys (c2p) or queries (p2c) within a block
    blocks = []
    for window in windows:
        pieces = []
        for first, last, value in block_pieces(content, positions, window, edges, transposed):
            size = list(value.shape)
            size[axis] = last - first
            pieces.append(value.expand(size))
        blocks.append(torch.cat(pieces, dim=axis) if len(pieces) > 1 else pieces[0])
    return torch.cat(blocks, dim=-1 if transposed else -2) if len(blocks) > 1 else blocks[0]


class WeightCache:
    """A value computed from some tensors (a layer's weights), kept until one of them differs from the copy taken
    when it was computed, or until it is asked for under another autocast state or with another `key`. The copies
    are compared element by element on every use, so that a change is seen however it was made (an optimizer step,
    `load_state_dict`, a write through `.data` or numpy). One entry, replaced whole, so that threads sharing the
    module each see a consistent one. Not copied with its module (`copy.deepcopy`, pickling): a copy starts empty.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.entry: Optional[tuple] = None  # (state, copies, value)

    def get(self, tensors: list, compute: Callable[[], Any], key: Any = None) -> Any:
        device = tensors[0].device.type
        state = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device), key)
        entry = self.entry
        if entry is not None and entry[0] == state and self.equal(entry[1], tensors):
            return entry[2]
        self.entry = None  # release the old value before computing the new one
        value = compute()
        self.entry = (state, [t.detach().clone() for t in tensors], value)
        return value

    @staticmethod
    def equal(copies: list, tensors: list) -> bool:
        return len(copies) == len(tensors) and all(
            c.shape == t.shape and c.dtype == t.dtype and c.device == t.device and torch.equal(c, t)
            for c, t in zip(copies, tensors)
        )

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.clear()


class RelativeScores(torch.autograd.Function):
    """`add_relative_scores`, in place into score or into a new buffer when score is None, (B, H, L, L), for where
    autograd records the scores (training).

    Recorded by autograd, every write into a slice of the buffer would copy the whole (B, H, L, L) gradient in
    the backward (its CopySlices node), and each block's band, two slices and a transpose of its (n, n + m)
    products, would cost two zero buffers and three copies of them. This backward writes a block's band of the
    gradient into one zero buffer laid out as the products are and multiplies it out, and sums the gradient
    beyond the span per query (key). It saves only its two inputs (autograd would keep a copy of each block).
    """

    @staticmethod
    def forward(ctx, score, content, positions, windows: list, transposed: bool, mask: Optional[torch.Tensor]):
        ctx.save_for_backward(content, positions)
        ctx.windows, ctx.transposed, ctx.added = windows, transposed, score is not None
        if ctx.added:
            ctx.mark_dirty(score)
        score = add_relative_scores(score, content, positions, windows, transposed, mask)
        ctx.dtype = score.dtype  # the products', which autocast may lower: the backward multiplies in it too
        return score

    @staticmethod
    def backward(ctx, grad):  # torch operations only, so that autograd can differentiate it again
        inputs = ctx.saved_tensors
        content, positions = (x.to(ctx.dtype) for x in inputs)
        windows, transposed = ctx.windows, ctx.transposed
        batch, heads, length, head_size = content.shape
        grad_content = content.new_empty(heads, batch, length, head_size)  # head-major, as the products are
        grad_positions = torch.zeros_like(positions)
        grad_edges = None
        for start, stop, inner_start, inner_stop, lo, hi in windows:
            size, width = stop - start, hi - lo
            grad_products = content.new_zeros(heads, batch, size, width)
            band = relative_band(grad_products.transpose(0, 1), inner_stop - inner_start, transposed)
            band.copy_(block_region(grad, start, stop, inner_start, inner_stop, transposed))
            grad_products = grad_products.view(heads, batch * size, width)
            grad_block = grad_products @ positions[:, lo:hi]
            grad_content[:, :, start:stop] = grad_block.view(heads, batch, size, head_size)
            block = content[:, :, start:stop].transpose(0, 1).reshape(heads, batch * size, head_size)
            grad_positions[:, lo:hi].baddbmm_(grad_products.transpose(1, 2), block)
            for side, (first, last) in enumerate(((0, inner_start), (inner_stop, length))):
                if first < last:
                    if grad_edges is None:
                        grad_edges = content.new_zeros(batch, heads, length, 2)
                    region = block_region(grad, start, stop, first, last, transposed)
                    grad_edges[:, :, start:stop, side] = region.sum(-2 if transposed else -1)
        grad_content = grad_content.transpose(0, 1)
        if grad_edges is not None:  # span_edges' backward
            grad_content = grad_content + grad_edges @ edge_rows(positions)
            edge_rows(grad_positions).add_(torch.einsum("bhls,bhld->hsd", grad_edges, content))
        grad_score = grad if ctx.added else None
        return grad_score, grad_content.to(inputs[0].dtype), grad_positions.to(inputs[1].dtype), None, None, None


class SavedProbabilitiesAttention(torch.autograd.Function):
    """softmax(q k^T + bias) v with dropout p, for a bias (B, H, L, L) that needs a gradient, on CPU.

    There `scaled_dot_product_attention` takes its unfused path, which keeps about 3.4 (B, H, L, L) tensors per
    layer for the backward; this keeps the probabilities and the dropout mask (bool) only and rebuilds the dropped
    probabilities in the backward. Softmax in float32 and dropout in the value dtype, as `eager_attention` does
    (and with the same random numbers, so that the two paths give the same result under the same seed).
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, query, key, value, bias, p: float):
        scores = (query @ key.transpose(-1, -2)).float().add_(bias)
        probs = torch.softmax(scores, dim=-1).to(value.dtype)
        del scores
        dropped = F.dropout(probs, p) if p > 0 else probs
        keep = dropped != 0 if p > 0 else None  # where a probability is 0 the mask does not matter
        ctx.save_for_backward(query, key, value, probs, keep)
        ctx.p, ctx.bias_dtype = p, bias.dtype
        return dropped @ value

    @staticmethod
    @torch.autograd.function.once_differentiable  # the probabilities are saved, not differentiated again
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_context):
        query, key, value, probs, keep = ctx.saved_tensors
        grad_probs = grad_context @ value.transpose(-1, -2)
        dropped = probs
        if keep is not None:
            dropped = probs * keep * (1 / (1 - ctx.p))
            grad_probs = grad_probs * keep * (1 / (1 - ctx.p))
        grad_value = dropped.transpose(-1, -2) @ grad_context
        del dropped
        # the softmax's backward, in float32 as its forward
        probs, grad_probs = probs.float(), grad_probs.float()
        grad_scores = probs * (grad_probs - (grad_probs * probs).sum(-1, keepdim=True))
        del probs, grad_probs
        grad_query = grad_scores.to(key.dtype) @ key
        grad_key = grad_scores.to(query.dtype).transpose(-1, -2) @ query
        return grad_query, grad_key, grad_value, grad_scores.to(ctx.bias_dtype), None


def check_ids(ids: torch.Tensor, limit: int, name: str) -> None:
    """Raise ValueError naming `name` when an id is outside [0, limit): an embedding gather would fail or lie."""
    if ids.numel() and not torch.compiler.is_compiling():
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= limit:
            raise ValueError(f"{name} must be in [0, {limit}), got values in [{low}, {high}]")


def token_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) token mask or (B, L, L) pair mask -> (B, L): position i is a token where it may attend to itself."""
    return attention_mask if attention_mask.dim() == 2 else attention_mask.diagonal(dim1=-2, dim2=-1)


def pair_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """The layers' (B, 1, 1, L) key mask (query i is a token where key i is) or (B, 1, L, L) pair mask ->
    (B, 1, L, L) bool, True where query i may attend to key j."""
    if attention_mask.shape[-2] == 1:
        return attention_mask & attention_mask.transpose(-1, -2)
    return attention_mask


def check_mask(attention_mask: torch.Tensor) -> None:
    """Raise ValueError unless the mask holds only 0 and 1 (other values would scale the embeddings)."""
    if attention_mask.numel() and not torch.compiler.is_compiling():
        bad = (attention_mask != 0) & (attention_mask != 1)
        if bool(bad.any()):
            raise ValueError(f"attention_mask must hold only 0 and 1, got {attention_mask[bad][0].item()}")


# ----------------------------------------------------------------------------- embeddings
class DebertaEmbeddings(nn.Module):
    """Token (+ absolute position, + token type) embeddings -> (B, L, hidden), zeroed at padded positions."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.position_biased_input = config.position_biased_input
        if config.absolute_position_table:
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.embedding_size)
        if config.type_vocab_size > 0:
            self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.embedding_size)
        if config.embedding_size != config.hidden_size:
            self.embed_proj = nn.Linear(config.embedding_size, config.hidden_size, bias=False)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: Optional[torch.Tensor],
        token_type_ids: torch.Tensor,
        position_ids: Optional[torch.Tensor],
        mask: torch.Tensor,
        inputs_embeds: Optional[torch.Tensor],
    ) -> torch.Tensor:
        if inputs_embeds is None:
            check_ids(input_ids, self.config.vocab_size, "input_ids")
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds
        if self.position_biased_input:
            if position_ids is None:
                length = embeddings.shape[1]
                if length > self.config.max_position_embeddings and not torch.compiler.is_compiling():
                    raise ValueError(
                        f"sequence length {length} exceeds max_position_embeddings "
                        f"({self.config.max_position_embeddings}) of this model's absolute positions"
                    )
                position_ids = torch.arange(length, device=embeddings.device)[None, :]
            check_ids(position_ids, self.config.max_position_embeddings, "position_ids")
            embeddings = embeddings + self.position_embeddings(position_ids)
        if self.config.type_vocab_size > 0:
            check_ids(token_type_ids, self.config.type_vocab_size, "token_type_ids")
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        if self.config.embedding_size != self.config.hidden_size:
            embeddings = self.embed_proj(embeddings)
        embeddings = self.LayerNorm(embeddings)
        embeddings = embeddings * mask[:, :, None].to(embeddings.dtype)
        return self.dropout(embeddings)


# ----------------------------------------------------------------------------- attention
class DisentangledSelfAttention(nn.Module):
    """Content-to-content plus c2p / p2c relative-position attention (B, L, hidden) -> (B, L, hidden)."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = config.hidden_size
        # Per-head interleaved q/k/v rows, as the original checkpoints store them.
        self.in_proj = nn.Linear(config.hidden_size, self.all_head_size * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(self.all_head_size))
        self.v_bias = nn.Parameter(torch.zeros(self.all_head_size))
        self.pos_att_type = config.pos_att_type
        self.scale_factor = config.scale_factor
        self.relative_attention = config.relative_attention
        self.talking_head = config.talking_head
        self.attn_implementation = getattr(config, "attn_implementation", "sdpa")
        self.relative_block = rules.RELATIVE_BLOCK
        self.max_relative_positions = config.attention_span
        if self.talking_head:
            self.head_logits_proj = nn.Linear(config.num_attention_heads, config.num_attention_heads, bias=False)
            self.head_weights_proj = nn.Linear(config.num_attention_heads, config.num_attention_heads, bias=False)
        if self.relative_attention:
            self.pos_dropout = nn.Dropout(config.hidden_dropout_prob)
            if "c2p" in self.pos_att_type or "p2p" in self.pos_att_type:
                self.pos_proj = nn.Linear(config.hidden_size, self.all_head_size, bias=False)
            if "p2c" in self.pos_att_type or "p2p" in self.pos_att_type:
                self.pos_q_proj = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.position_cache = WeightCache()  # see `cached_position_layers`

    def train(self, mode: bool = True) -> "DisentangledSelfAttention":
        if mode:  # a model about to train would only hold it in memory
            self.position_cache.clear()
        return super().train(mode)

    def transpose_for_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, H*k) -> (B, H, L, k)."""
        return x.view(*x.shape[:-1], self.num_attention_heads, -1).permute(0, 2, 1, 3)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor,
        output_attentions: bool = False,
        rel_embeddings: Optional[torch.Tensor] = None,
        query_states: Optional[torch.Tensor] = None,
        workspace: Optional[dict] = None,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """attention_mask: (B, 1, 1, L) or (B, 1, L, L) bool (`DebertaEncoder.get_attention_mask`).
        rel_embeddings: (2L, hidden), the rows for distances -L .. L-1 (see `build_relative_position`).
        query_states: (B, L, hidden) to build the queries from instead of hidden_states (the Enhanced Mask
        Decoder); keys and values always come from hidden_states."""
        projected = self.in_projection(hidden_states)
        query_layer, key_layer, value_layer = self.transpose_for_scores(projected).chunk(3, dim=-1)
        if query_states is not None:
            query_layer = self.transpose_for_scores(self.in_projection(query_states)).chunk(3, dim=-1)[0]
        scale = math.sqrt(self.attention_head_size * self.scale_factor)

        fused = not (output_attentions or self.talking_head or self.attn_implementation == "eager")
        if fused and self.kernel_applies(query_layer):
            context_layer, attention_probs = self.kernel_attention(
                attention_mask, query_layer, key_layer, value_layer, rel_embeddings, scale
            ), None
        else:
            query_layer = query_layer / scale
            rel_att = None
            if self.relative_attention and any(t in self.pos_att_type for t in ("c2p", "p2c", "p2p")):
                table = workspace.get("relative_table") if workspace is not None and not self.training else None
                if table is not None:  # inference on CPU
                    pos_key_layer, pos_query_layer = self.cached_position_layers(*table)
                else:
                    pos_key_layer, pos_query_layer = self.position_layers(self.pos_dropout(rel_embeddings))
                rel_att = self.disentangled_att_bias(
                    query_layer, key_layer, pos_key_layer, pos_query_layer, attention_mask if fused else None,
                    workspace,
                )
            if not fused:
                context_layer, attention_probs = self.eager_attention(
                    query_layer, key_layer, value_layer, pair_mask(attention_mask), rel_att
                )
            else:
                context_layer, attention_probs = self.sdpa_attention(
                    query_layer, key_layer, value_layer, attention_mask, rel_att
                ), None
        context_layer = context_layer.permute(0, 2, 1, 3).reshape(*hidden_states.shape[:-1], self.all_head_size)
        return context_layer, attention_probs

    def in_projection(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, L, hidden) -> in_proj plus q_bias and v_bias: (B, L, H * 3d), per head q, k, v as in_proj's rows.

        Where in_proj is a plain Linear that no hook watches, the biases go into its product, one addmm instead of
        two more passes over the queries and values (on CPU, two parallel regions; stacking the biases is too small
        to be one); a module that replaces or wraps it (an adapter, a quantized or parametrized Linear) is called
        as it is. Under autocast the float32 biases are added after the product, which they promote to float32."""
        heads = self.num_attention_heads
        zeros = self.q_bias.new_zeros(heads, self.attention_head_size)
        bias = torch.stack([self.q_bias.view(heads, -1), zeros, self.v_bias.view(heads, -1)], dim=1).view(-1)
        plain = type(self.in_proj) is nn.Linear and self.in_proj.bias is None and not forward_hooked(self.in_proj)
        if plain and not torch.is_autocast_enabled(hidden_states.device.type):
            output = native.linear(hidden_states, self.in_proj.weight, bias)
            return F.linear(hidden_states, self.in_proj.weight, bias) if output is None else output
        return self.in_proj(hidden_states) + bias

    def eager_attention(self, query_layer, key_layer, value_layer, attention_mask, rel_att):
        """Plain softmax attention under a (B, 1, n, L) pair mask (`pair_mask`); masked probabilities are exactly
        0, rows with no valid key all 0."""
        attention_scores = query_layer @ key_layer.transpose(-1, -2)
        if rel_att is not None:
            attention_scores = attention_scores + rel_att
        if self.talking_head:
            attention_scores = self.head_logits_proj(attention_scores.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        attention_scores = attention_scores.float().masked_fill(~attention_mask, torch.finfo(torch.float32).min)
        attention_probs = torch.softmax(attention_scores, dim=-1).masked_fill(~attention_mask, 0.0)
        attention_probs = self.dropout(attention_probs.to(value_layer.dtype))
        if self.talking_head:
            attention_probs = self.head_weights_proj(attention_probs.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return attention_probs @ value_layer, attention_probs

    def sdpa_attention(self, query_layer, key_layer, value_layer, attention_mask, rel_att):
        """The fused kernel with the relative-position terms and the mask as one additive bias (the padding of
        the keys, (B, 1, 1, L), unless the mask pairs queries with keys; already in rel_att, see
        `disentangled_att_bias`); padded queries are zeroed on the output."""
        packed = attention_mask.shape[-2] > 1
        token = attention_mask.diagonal(dim1=-2, dim2=-1) if packed else attention_mask[:, :, 0]  # (B, 1, L)
        # added, not filled with the (B, 1, L, L) mask: a broadcast masked_fill_ is several times slower
        bias = mask_bias(attention_mask, query_layer.dtype).to(query_layer.dtype) if rel_att is None else rel_att
        dropout_p = self.dropout.p if self.training else 0.0
        if bias.requires_grad and bias.device.type in SAVED_PROBABILITIES_DEVICES:
            context = SavedProbabilitiesAttention.apply(query_layer, key_layer, value_layer, bias, dropout_p)
        else:
            # cuDNN's kernel, PyTorch's first choice on recent GPUs (at a dropout of 0 or a multiple of 1/16), is
            # not differentiable in the bias and would raise; the memory-efficient kernel computes its gradient
            with sdpa_kernel(BIAS_GRADIENT_BACKENDS) if bias.requires_grad else contextlib.nullcontext():
                context = F.scaled_dot_product_attention(
                    query_layer, key_layer, value_layer, attn_mask=bias, dropout_p=dropout_p, scale=1.0
                )
        return torch.where(token[..., None], context, 0.0)

    def kernel_applies(self, query_layer: torch.Tensor) -> bool:
        """Whether `kernel_attention` takes this call: attn_implementation="triton", on a GPU (or under Triton's
        interpreter), no p2p, not traced by torch.compile. Elsewhere the default path runs."""
        if self.attn_implementation != "triton" or "p2p" in self.pos_att_type or torch.compiler.is_compiling():
            return False
        # On CPU only Triton's interpreter runs it; Triton is not imported there otherwise: in a process that has
        # loaded TensorFlow first, importing it aborts (both bring LLVM, whose options then clash)
        interpreter = os.environ.get("TRITON_INTERPRET", "").lower() in ("1", "true", "on")
        if not (query_layer.is_cuda or interpreter):
            return False
        try:
            from deberta_pt import triton_attention
        except ImportError as error:
            if query_layer.is_cuda:
                raise ImportError('attn_implementation="triton" needs the triton package (pip install triton)') \
                    from error
            return False
        return triton_attention.runs_on(query_layer)

    def kernel_attention(self, attention_mask, query_layer, key_layer, value_layer, rel_embeddings, scale):
        """`triton_attention.relative_attention` of the unscaled queries, scaled in the kernel, with the position
        keys and queries of the distances -span .. span - 1 (every farther distance reads an edge row): column
        i - j + span of c2p and p2c for query i and key j."""
        from deberta_pt import triton_attention

        device = query_layer.device.type
        if torch.is_autocast_enabled(device):  # in the autocast dtype, as scaled_dot_product_attention would be
            query_layer, key_layer, value_layer = (
                layer.to(torch.get_autocast_dtype(device)) for layer in (query_layer, key_layer, value_layer))
        pos_key = pos_query = None
        length = query_layer.shape[-2]
        span = rules.relative_span(length, length, self.max_relative_positions)
        if self.relative_attention and ("c2p" in self.pos_att_type or "p2c" in self.pos_att_type):
            rows = self.pos_dropout(rel_embeddings[length - span : length + span])  # of distances -L .. L-1
            if "c2p" in self.pos_att_type:
                pos_key = self.transpose_for_scores(self.pos_proj(rows)[None])[0]
            if "p2c" in self.pos_att_type:
                pos_query = self.transpose_for_scores(self.pos_q_proj(rows)[None])[0]
        mask = attention_mask[:, 0] if attention_mask.shape[-2] > 1 else attention_mask[:, 0, 0]  # pairs or keys
        return triton_attention.relative_attention(
            query_layer, key_layer, value_layer, pos_key, pos_query, mask, span, 1 / scale,
            self.dropout.p if self.training else 0.0,
        )

    def position_layers(self, rel_embeddings: torch.Tensor) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """The position keys of the reversed rows (for c2p and p2p) and the position queries, divided by the
        scale (for p2c and p2p), of the (2L, hidden) rows: (H, 2L, d) each, None where not used."""
        pos_key_layer = pos_query_layer = None
        if "c2p" in self.pos_att_type or "p2p" in self.pos_att_type:
            # rows reversed, so that each query's distances form one band of its scores
            pos_key_layer = self.transpose_for_scores(self.pos_proj(rel_embeddings.flip(0))[None])[0]
        if "p2c" in self.pos_att_type or "p2p" in self.pos_att_type:
            pos_query_layer = self.transpose_for_scores(self.pos_q_proj(rel_embeddings)[None])[0]
            pos_query_layer = pos_query_layer / math.sqrt(self.attention_head_size * self.scale_factor)
        return pos_key_layer, pos_query_layer

    def cached_position_layers(
        self, table: torch.Tensor, index: torch.Tensor | slice, version: object
    ) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """`position_layers` of the rows table[index] ((2R, hidden) table, 2L rows: `DebertaEncoder.relative_index`),
        taken from this layer's `position_layers` of the whole table, which it keeps between calls while its weights
        and the table's `version` (`DebertaEncoder.forward`) stay the same (`position_cache`). For inference: on CPU
        at deberta-base's shape those products take 8 % of a 2 x 512 forward, and they depend on the weights alone."""
        weights = [p for name in ("pos_proj", "pos_q_proj") if hasattr(self, name)
                   for p in getattr(self, name).parameters()]

        def compute() -> tuple:  # contiguous per head, so that a slice of rows is too
            return tuple(None if layer is None else layer.contiguous() for layer in self.position_layers(table))

        pos_key_layer, pos_query_layer = self.position_cache.get(weights, compute, version)
        # their key rows are those of the table reversed, and so are table[index]'s: the distances are symmetric,
        # index[2L - 1 - t] = 2R - 1 - index[t] (`build_relative_position`)
        return tuple(None if layer is None else layer[:, index] for layer in (pos_key_layer, pos_query_layer))

    def p2p_scores(self, pos_key_layer: torch.Tensor, pos_query_layer: torch.Tensor, length: int) -> torch.Tensor:
        """p2p (H, L, L): the position query of query i is the row of distance i (rows L .. 2L-1), so the scores
        do not depend on the batch."""
        return relative_band(pos_query_layer[:, length:] @ pos_key_layer.transpose(-1, -2), length, False)

    def disentangled_att_bias(
        self, query_layer, key_layer, pos_key_layer, pos_query_layer, mask: Optional[torch.Tensor] = None,
        workspace: Optional[dict] = None,
    ) -> torch.Tensor:
        """c2p[i, j] = q_i . Kr[i - j], p2c[i, j] = k_j . Qr[i - j] and p2p[i, j] = Qr[i] . Kr[i - j], where
        Kr / Qr are the position keys / queries (`position_layers`) of the row of a distance: (B, H, L, L),
        plus `mask_bias(mask)` where a mask (`DebertaEncoder.get_attention_mask`) is given; in the workspace's
        buffer where one is given (`DebertaEncoder.forward`).

        query_layer and the position queries are already divided by the scale. c2p is built per block of queries
        and p2c per block of keys (`rules.relative_windows`) into one buffer (through `RelativeScores` where
        autograd records them).
        """
        length = query_layer.shape[-2]
        score = None
        if "c2p" in self.pos_att_type:
            score = self.relative_scores(score, query_layer, pos_key_layer, False, mask, workspace)
        if "p2c" in self.pos_att_type:
            score = self.relative_scores(
                score, key_layer, pos_query_layer, True, mask if score is None else None, workspace
            )
        if "p2p" in self.pos_att_type:
            p2p_att = self.p2p_scores(pos_key_layer, pos_query_layer, length)
            if score is None:
                score = p2p_att.new_zeros(*query_layer.shape[:-2], length, length)
                if mask is not None:
                    score += mask_bias(mask, score.dtype)
            score += p2p_att
        return score

    def relative_scores(
        self, score: Optional[torch.Tensor], content: torch.Tensor, positions: torch.Tensor, transposed: bool,
        mask: Optional[torch.Tensor] = None, workspace: Optional[dict] = None,
    ) -> torch.Tensor:
        """score + c2p (content: queries (B, H, L, d), positions: the reversed position keys (H, 2L, d)) or,
        transposed, + p2c (content: keys, positions: the position queries): (B, H, L, L), added in place; a
        new buffer, starting from `mask_bias(mask)` where a mask is given, when score is None. Per block of
        queries (keys), `rules.relative_windows`; through `RelativeScores` where autograd records them; under
        `torch.compile` without autograd, a new tensor (`concatenated_relative_scores`).
        """
        length = content.shape[-2]
        windows = rules.relative_windows(length, self.max_relative_positions, transposed, self.relative_block,
                                         static=has_static_value(length))
        if torch.is_grad_enabled() and (content.requires_grad or positions.requires_grad):
            return RelativeScores.apply(score, content, positions, windows, transposed, mask)
        if torch.compiler.is_compiling():
            # written in place, each block became a select over the whole buffer: at 2 x 512 on CPU one kernel of
            # 45 ms per layer against 12 ms for the concatenated blocks (docs/performance.md)
            value = concatenated_relative_scores(content, positions, windows, transposed)
            if mask is not None:
                value = value + mask_bias(mask, value.dtype).to(value.dtype)
            return value if score is None else score + value
        return add_relative_scores(score, content, positions, windows, transposed, mask, workspace)


class DebertaSelfOutput(nn.Module):
    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(dense(self.dense, hidden_states)) + input_tensor)


class DebertaAttention(nn.Module):
    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.self = DisentangledSelfAttention(config)
        self.output = DebertaSelfOutput(config)

    def forward(
        self, hidden_states, attention_mask, output_attentions=False, rel_embeddings=None, query_states=None,
        workspace=None,
    ):
        self_output, attention_probs = self.self(
            hidden_states, attention_mask, output_attentions, rel_embeddings=rel_embeddings, query_states=query_states,
            workspace=workspace,
        )
        residual = hidden_states if query_states is None else query_states
        return self.output(self_output, residual), attention_probs


class DebertaIntermediate(nn.Module):
    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]
        self.hidden_act = config.hidden_act

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = dense(self.dense, hidden_states)
        if torch.is_grad_enabled() or torch.compiler.is_compiling() \
                or forward_hooked(self.dense, self.intermediate_act_fn):
            return self.intermediate_act_fn(hidden_states)
        # In place where nothing else holds the linear's output: a new (B, L, intermediate) tensor per layer had its
        # pages mapped afresh by the system allocator, 8 % of a deberta-base forward at 8 x 128 on CPU.
        return ACT2FN_INPLACE[self.hidden_act](hidden_states)


class DebertaOutput(nn.Module):
    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(dense(self.dense, hidden_states)) + input_tensor)


class DebertaLayer(nn.Module):
    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.attention = DebertaAttention(config)
        self.intermediate = DebertaIntermediate(config)
        self.output = DebertaOutput(config)

    def forward(
        self, hidden_states, attention_mask, output_attentions=False, rel_embeddings=None, query_states=None,
        workspace=None,
    ):
        attention_output, attention_probs = self.attention(
            hidden_states, attention_mask, output_attentions, rel_embeddings=rel_embeddings, query_states=query_states,
            workspace=workspace,
        )
        layer_output = self.output(self.intermediate(attention_output), attention_output)
        return layer_output, attention_probs


class DebertaEncoder(nn.Module):
    """The layer stack with the relative-position embeddings (2R, hidden) that every layer shares."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([DebertaLayer(config) for _ in range(config.num_hidden_layers)])
        self.relative_attention = config.relative_attention
        self.max_relative_positions = config.attention_span
        if self.relative_attention:
            self.rel_embeddings = nn.Embedding(self.max_relative_positions * 2, config.hidden_size)
        self.gradient_checkpointing = False
        self.table_version = WeightCache()  # a new object whenever the table changes; see `forward`

    def train(self, mode: bool = True) -> "DebertaEncoder":
        if mode:  # as `DisentangledSelfAttention.train`
            self.table_version.clear()
        return super().train(mode)

    def get_attention_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) token mask -> (B, 1, 1, L) bool key mask, a query being a token where its key is (a pair mask
        of its own would make the fused path add a (B, 1, L, L) bias, 1 to 2 % slower on CPU); (B, L, L) pair
        mask -> (B, 1, L, L) bool, with every pair of a padded position (`token_mask`) masked."""
        valid = attention_mask.bool()
        if valid.dim() == 2:
            return valid[:, None, None, :]
        token = token_mask(valid)
        return (valid & token[:, None, :] & token[:, :, None])[:, None]

    def relative_index(self, length: int, device: torch.device) -> torch.Tensor | slice:
        """The 2L rows of `rel_embeddings` for the distances -L .. L-1 (`build_relative_position`): a slice where no
        distance is clamped (L <= R: they are the rows R - L .. R + L - 1), so that taking them is a view and not a
        gather (1.2 ms per layer and call at 2 x 512 on CPU for the kept projections), else a (2L,) index."""
        if isinstance(length, int) and length <= self.max_relative_positions:
            return slice(self.max_relative_positions - length, self.max_relative_positions + length)
        span = rules.relative_span(length, length, self.max_relative_positions)
        return build_relative_position(length, span, self.max_relative_positions, device)

    def get_rel_embeddings(self, length: int, device: torch.device) -> Optional[torch.Tensor]:
        """(2L, hidden) relative embeddings for the distances -L .. L-1, or None without relative attention."""
        if not self.relative_attention:
            return None
        return self.rel_embeddings.weight[self.relative_index(length, device)]

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> BaseModelOutput:
        """attention_mask: (B, L), 1 for tokens, 0 for padding; or (B, L, L), 1 where query i may attend to key j."""
        layer_mask = self.get_attention_mask(attention_mask)
        rel_embeddings = self.get_rel_embeddings(hidden_states.shape[1], hidden_states.device)
        # Without autograd, each layer's (B, H, L, L) relative scores are dead once its attention has read them,
        # and so are the position products of a block: the layers share their buffers (`workspace_buffer`).
        workspace = None if torch.is_grad_enabled() else {}
        traced = torch.compiler.is_compiling() or torch.jit.is_tracing()
        if workspace is not None and self.relative_attention and not self.training \
                and hidden_states.device.type == "cpu" and not traced:
            # layers in inference keep their projections of the whole table (`cached_position_layers`); on a GPU,
            # where they are a few short kernels, comparing the weights would cost more
            table = self.rel_embeddings.weight
            index = self.relative_index(hidden_states.shape[1], hidden_states.device)
            workspace["relative_table"] = (table, index, self.table_version.get([table], object))

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer_module in self.layer:
            if self.gradient_checkpointing and self.training:
                hidden_states, attention_probs = checkpoint(
                    layer_module, hidden_states, layer_mask, output_attentions, rel_embeddings, use_reentrant=False
                )
            else:
                hidden_states, attention_probs = layer_module(
                    hidden_states, layer_mask, output_attentions, rel_embeddings=rel_embeddings, workspace=workspace
                )
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (hidden_states,)
            if output_attentions:
                all_attentions = all_attentions + (attention_probs,)
        return BaseModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )


# ----------------------------------------------------------------------------- base model
class DebertaModel(DebertaPreTrainedModel):
    """The bare encoder: last_hidden_state (B, L, hidden)."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__(config)
        self.embeddings = DebertaEmbeddings(config)
        self.encoder = DebertaEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        inputs_embeds: Optional[torch.Tensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ):
        def shape_of(x: Optional[torch.Tensor]) -> Optional[tuple[int, ...]]:
            return None if x is None else tuple(x.shape)

        shape = rules.check_input_shapes(
            shape_of(input_ids), shape_of(inputs_embeds), attention_mask=shape_of(attention_mask),
            token_type_ids=shape_of(token_type_ids), position_ids=shape_of(position_ids),
        )
        rules.check_pair_mask(self.config, shape_of(attention_mask))
        if input_ids is not None and input_ids.is_floating_point():
            raise TypeError(f"input_ids must be integers, got {input_ids.dtype}")
        device = (input_ids if input_ids is not None else inputs_embeds).device
        if attention_mask is None:
            attention_mask = torch.ones(shape, dtype=torch.long, device=device)
        else:
            check_mask(attention_mask)
        if token_type_ids is None:
            token_type_ids = torch.zeros(shape, dtype=torch.long, device=device)

        embedding_output = self.embeddings(
            input_ids, token_type_ids, position_ids, token_mask(attention_mask), inputs_embeds
        )
        outputs = self.encoder(
            embedding_output,
            attention_mask,
            output_hidden_states=bool(output_hidden_states),
            output_attentions=bool(output_attentions),
        )
        return outputs if self._return_dict(return_dict) else outputs.to_tuple()


# ----------------------------------------------------------------------------- heads
def vocab_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, alignment: Optional[int] = None
                 ) -> torch.Tensor:
    """(..., E) states x (V, E) word weights + (V,) bias -> (..., V) logits, with the vocabulary padded by zero rows
    to a multiple of `alignment` (default: `rules.ROW_ALIGNMENT` on a GPU, 1 elsewhere); the logits are then a
    view that skips the padding's columns.

    cuBLAS's fast GEMM kernels need 16-byte aligned rows: at deberta-base's 50265 words the three products of a
    masked-LM training step ran in an old CUTLASS kernel, 15 ms of the 68 ms of kernels of a bfloat16 step at
    16 x 512 on an H200 (57 ms padded). On a CPU the padding's copy of the weight would cost more than it saves."""
    if alignment is None:
        alignment = rules.ROW_ALIGNMENT if hidden.device.type == "cuda" else 1
    vocab = weight.shape[0]
    padding = -vocab % alignment
    if padding:
        weight, bias = F.pad(weight, (0, 0, 0, padding)), F.pad(bias, (0, padding))
    return F.linear(hidden, weight, bias)[..., :vocab]


class DebertaPredictionHeadTransform(nn.Module):
    """dense -> activation -> LayerNorm, hidden -> embedding_size (legacy MLM head)."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class DebertaLMPredictionHead(nn.Module):
    """Legacy head (`cls.predictions.*`): transform, then a decoder tied to the word embeddings, plus a bias."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.transform = DebertaPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return vocab_logits(self.transform(hidden_states), self.decoder.weight, self.bias)


class DebertaOnlyMLMHead(nn.Module):
    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.predictions = DebertaLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


class DebertaLMHead(nn.Module):
    """Original head (`lm_predictions.lm_head.*`): dense, activation, LayerNorm, then scores against the
    word embeddings passed in, plus a bias. dense maps hidden -> embedding_size so that a model with an
    embedding projection works too."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        hidden_states = self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))
        return vocab_logits(hidden_states, word_embeddings, self.bias)


class DebertaLMPredictions(nn.Module):
    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.lm_head = DebertaLMHead(config)

    def forward(self, sequence_output: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        return self.lm_head(sequence_output, word_embeddings)


class CrossEntropyFromLogits(torch.autograd.Function):
    """Per-row float32 cross-entropy of logits (N, C) against targets (N,), keeping for the backward only the
    logits (which the model returns anyway); the backward computes the softmax again.

    `F.cross_entropy` on `logits.float()` keeps a float32 (N, C) log-softmax, and the cast makes another while it
    runs: at the masked-LM shape (C = 50265, bfloat16 logits) that is 4x the logits on top of them, the largest
    tensors of a training step. Here float32 lives only a block of rows at a time.
    """

    @staticmethod
    def forward(ctx, logits, targets):
        ctx.block = max(1, 2**24 // logits.shape[-1])  # rows per float32 temporary of about 64 MiB
        ctx.save_for_backward(logits, targets)
        return -torch.cat([
            torch.log_softmax(rows, dim=-1, dtype=torch.float32).gather(1, row_targets[:, None])[:, 0]
            for rows, row_targets in zip(logits.split(ctx.block), targets.split(ctx.block))
        ])

    @staticmethod
    def backward(ctx, grad_loss):
        logits, targets = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for start in range(0, logits.shape[0], ctx.block):
            rows = slice(start, start + ctx.block)
            probs = torch.softmax(logits[rows], dim=-1, dtype=torch.float32)
            minus_one = probs.new_full((len(probs), 1), -1.0)
            if torch.is_grad_enabled():  # create_graph: out of place, so that this backward can be differentiated
                grad[rows] = probs.scatter_add(1, targets[rows, None], minus_one) * grad_loss[rows, None]
            else:
                grad[rows] = probs.scatter_add_(1, targets[rows, None], minus_one).mul_(grad_loss[rows, None])
        return grad, None


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Mean float32 cross-entropy of logits (..., C) over the labels (...) that are not `ignore_index`;
    0 (not NaN) when every label is ignored."""
    logits = logits.reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1).long()
    kept = labels != ignore_index
    per_example = CrossEntropyFromLogits.apply(logits, torch.where(kept, labels, 0))
    return (per_example * kept).sum() / kept.sum().clamp(min=1)


class DebertaForMaskedLM(DebertaPreTrainedModel):
    """logits (B, L, vocab_size); loss: cross-entropy over labels != -100."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__(config)
        self.legacy = config.legacy
        self.deberta = DebertaModel(config)
        if self.legacy:
            self.cls = DebertaOnlyMLMHead(config)
        else:
            self.lm_predictions = DebertaLMPredictions(config)
        self.post_init()

    def get_output_embeddings(self) -> Optional[nn.Linear]:
        return self.cls.predictions.decoder if self.legacy else None

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        emd = self.config.enhanced_mask_decoder
        outputs = self.deberta(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions, output_hidden_states or emd, return_dict=True,
        )
        sequence_output = outputs.last_hidden_state
        if emd:
            sequence_output = self.enhanced_mask_decoder(outputs.hidden_states[-2], attention_mask, position_ids)
        if self.legacy:
            logits = self.cls(sequence_output)
        else:
            logits = self.lm_predictions(sequence_output, self.deberta.embeddings.word_embeddings.weight)
        loss = masked_cross_entropy(logits, labels, rules.IGNORE_INDEX) if labels is not None else None
        result = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states if output_hidden_states else None,
            attentions=outputs.attentions,
        )
        return result if self._return_dict(return_dict) else result.to_tuple()

    def enhanced_mask_decoder(
        self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor], position_ids: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """The original DeBERTa's Enhanced Mask Decoder: (B, L, hidden) states to predict tokens from.

        Queries start as the absolute position embeddings plus the states entering the last layer,
        H = hidden_states (the second-to-last entry of `hidden_states`); the last encoder layer runs twice
        with keys and values from H and queries from the previous step.
        """
        batch, length = hidden_states.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=hidden_states.device)
        if position_ids is None:
            position_ids = torch.arange(length, device=hidden_states.device)[None, :]
        embeddings = self.deberta.embeddings
        check_ids(position_ids, self.config.max_position_embeddings, "position_ids")
        positions = embeddings.position_embeddings(position_ids)
        if self.config.embedding_size != self.config.hidden_size:
            positions = embeddings.embed_proj(positions)
        encoder = self.deberta.encoder
        layer_mask = encoder.get_attention_mask(attention_mask)
        rel_embeddings = encoder.get_rel_embeddings(length, hidden_states.device)
        query_states = positions + hidden_states
        for _ in range(2):
            query_states, _ = encoder.layer[-1](
                hidden_states, layer_mask, rel_embeddings=rel_embeddings, query_states=query_states
            )
        return query_states


class ContextPooler(nn.Module):
    """The first token's hidden state -> dropout -> dense -> activation: (B, pooler_hidden_size)."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.pooler_hidden_size)
        self.dropout = nn.Dropout(config.pooler_dropout)
        self.activation = ACT2FN[config.pooler_hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(self.dropout(hidden_states[:, 0])))


def sequence_classification_loss(logits: torch.Tensor, labels: torch.Tensor, config: DebertaConfig) -> torch.Tensor:
    """The loss chosen by `rules.sequence_classification_loss_kind`, as a float32 scalar."""
    kind = rules.sequence_classification_loss_kind(config.problem_type, config.num_labels, tuple(labels.shape))
    logits = logits.float()
    if kind == "regression":
        return F.mse_loss(logits.reshape(-1), labels.reshape(-1).float())
    if kind == "single_label":  # negative labels are not labelled
        labels = labels.reshape(-1).long()
        return masked_cross_entropy(logits, torch.where(labels >= 0, labels, rules.IGNORE_INDEX), rules.IGNORE_INDEX)
    if kind == "soft_label":
        return -(torch.log_softmax(logits, dim=-1) * labels.float()).sum(-1).mean()
    return F.binary_cross_entropy_with_logits(logits, labels.float())


class DebertaForSequenceClassification(DebertaPreTrainedModel):
    """logits (B, num_labels); loss per `rules.sequence_classification_loss_kind`."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.deberta = DebertaModel(config)
        self.pooler = ContextPooler(config)
        self.classifier = nn.Linear(config.pooler_hidden_size, config.num_labels)
        drop = config.cls_dropout if config.cls_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(drop)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        outputs = self.deberta(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions, output_hidden_states, return_dict=True,
        )
        pooled_output = self.dropout(self.pooler(outputs.last_hidden_state))
        logits = self.classifier(pooled_output)
        loss = sequence_classification_loss(logits, labels, self.config) if labels is not None else None
        result = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return result if self._return_dict(return_dict) else result.to_tuple()


class DebertaForTokenClassification(DebertaPreTrainedModel):
    """logits (B, L, num_labels); loss: cross-entropy over labels != -100."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.deberta = DebertaModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        outputs = self.deberta(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions, output_hidden_states, return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = masked_cross_entropy(logits, labels, rules.IGNORE_INDEX) if labels is not None else None
        result = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return result if self._return_dict(return_dict) else result.to_tuple()


class DebertaForQuestionAnswering(DebertaPreTrainedModel):
    """start_logits, end_logits (B, L); loss: mean of start and end cross-entropy. Positions are clamped
    to [0, L]: negative ones count as 0, and L or beyond is ignored."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__(config)
        self.deberta = DebertaModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        start_positions=None,
        end_positions=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        outputs = self.deberta(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions, output_hidden_states, return_dict=True,
        )
        logits = self.qa_outputs(outputs.last_hidden_state)
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored_index = start_logits.shape[1]

            def span_loss(span_logits: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
                positions = positions.reshape(-1).long().clamp(0, ignored_index)
                return masked_cross_entropy(span_logits, positions, ignored_index)

            loss = (span_loss(start_logits, start_positions) + span_loss(end_logits, end_positions)) / 2
        result = QuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits,
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )
        return result if self._return_dict(return_dict) else result.to_tuple()


class DebertaForMultipleChoice(DebertaPreTrainedModel):
    """Inputs (B, C, L) for C choices -> logits (B, C): the pooled first token of each choice, scored by a
    (pooler_hidden_size -> 1) classifier; loss: cross-entropy over the choices."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__(config)
        self.deberta = DebertaModel(config)
        self.pooler = ContextPooler(config)
        self.classifier = nn.Linear(config.pooler_hidden_size, 1)
        drop = config.cls_dropout if config.cls_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(drop)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        source = input_ids if input_ids is not None else inputs_embeds
        if source is None or source.dim() != (3 if input_ids is not None else 4):
            raise ValueError("multiple choice takes input_ids (batch, choices, length) or inputs_embeds "
                             "(batch, choices, length, embedding_size)")
        num_choices = source.shape[1]

        def flat(x: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if x is None else x.reshape(-1, *x.shape[2:])

        outputs = self.deberta(
            flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids), flat(inputs_embeds),
            output_attentions, output_hidden_states, return_dict=True,
        )
        pooled_output = self.dropout(self.pooler(outputs.last_hidden_state))
        logits = self.classifier(pooled_output).reshape(-1, num_choices)
        loss = masked_cross_entropy(logits, labels, rules.IGNORE_INDEX) if labels is not None else None
        result = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return result if self._return_dict(return_dict) else result.to_tuple()
