"""DeBERTa (v1) in Keras 3 on TensorFlow: embeddings, disentangled attention, encoder, heads.

Mirrors `deberta_pt/modeling.py` class for class (names prefixed TF) and attribute for attribute: the
attribute names are the checkpoint weight names (but for torch's `output` sub-modules: Keras reserves that
attribute, so they are `dense_output`, a layer named "output"). Shapes: B batch, L sequence length, H heads, d head size,
R = config.attention_span. Every layer builds its variables from the config (`build` ignores input shapes),
and the models build themselves at construction.

XLA: nothing branches on tensor values; lengths unknown at trace time are read with `tf.shape`; the
relative-position scores are laid out by reshapes (`relative_band`), not gathers.
Mixed precision: the softmax runs in float32 and Keras LayerNormalization keeps its statistics in float32.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import keras
import tensorflow as tf

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

from .pretrained import (
    DebertaKerasMixin,
    TFDebertaPreTrainedModel,
    build_once,
    shape_list,
    unpack_inputs,
)

ACT2FN = {
    "gelu": functools.partial(tf.nn.gelu, approximate=False),
    "gelu_python": functools.partial(tf.nn.gelu, approximate=False),
    "gelu_new": functools.partial(tf.nn.gelu, approximate=True),
    "gelu_fast": functools.partial(tf.nn.gelu, approximate=True),
    "relu": tf.nn.relu,
    "tanh": tf.math.tanh,
    "sigmoid": tf.math.sigmoid,
    "silu": tf.nn.silu,
    "swish": tf.nn.silu,
    "linear": tf.identity,
}

register = keras.saving.register_keras_serializable(package="deberta_zoo")

# Inference attends per block of QUERY_BLOCK queries, one block after the other, once a layer's (B, H, L, L) float32
# scores would take more than BLOCKED_SCORES_BYTES (`TFDisentangledSelfAttention.blocked_attention`).
QUERY_BLOCK = 128
BLOCKED_SCORES_BYTES = 64 * 2**20


# ----------------------------------------------------------------------------- helpers
def build_relative_position(length, span, max_relative_positions: int) -> tf.Tensor:
    """(2L,) int32 rows of `rel_embeddings` for the relative distances -L .. L-1 of a sequence of length L.

    Distance i - j uses row clamp(i - j + span, 0, 2*span - 1) + R - span (the original DeBERTa rule, R =
    max_relative_positions). Laying the rows out for every distance a length-L sequence has lets
    `relative_band` turn position scores into (L, L) with a reshape instead of a gather.
    Built once per forward and shared by every layer, batch row and head. length and span may be tensors.
    """
    distance = tf.range(2 * length) - length
    return tf.clip_by_value(distance + span, 0, 2 * span - 1) + (max_relative_positions - span)


def relative_band(scores: tf.Tensor, length, transposed: bool) -> tf.Tensor:
    """(..., n, n + m) scores of a block of n queries (c2p) or keys (p2c) against its window of relative
    positions (`rules.relative_windows`) -> (..., n, m) scores against the m = `length` keys the window covers,
    or (..., m, n) against the queries when transposed; without a gather.

    transposed=False (c2p, position rows reversed): out[a, j] = scores[a, n - 1 - a + j].
    transposed=True (p2c): out[i, b] = scores[b, n + i - b].
    Both pick a band of the row-major (n * (n + m)) buffer: element (a, j) of an (n, n + m - 1) view that
    starts at `offset` is scores.flat[offset + a * (n + m - 1) + j]. Reshapes and slices only, which XLA
    compiles with the offsets as constants.
    """
    *batch, rows, width = shape_list(scores)
    offset = rows if transposed else rows - 1
    flat = tf.reshape(scores, [*batch, rows * width])[..., offset : offset + rows * (width - 1)]
    band = tf.reshape(flat, [*batch, rows, width - 1])[..., :length]
    return tf.linalg.matrix_transpose(band) if transposed else band


def position_scores(content: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
    """(B, H, n, d) queries or keys x (H, w, d) position keys or queries -> (B, H, n, w) dot products.

    A batch matmul that broadcasts the positions over the batch (in TensorFlow without copying them).
    """
    return tf.matmul(content, positions[None], transpose_b=True)


def edge_rows(positions: tf.Tensor) -> tf.Tensor:
    """(H, 2L, d) position rows -> (H, 2, d), the first and the last, which every distance beyond the span reads.
    Static shapes."""
    return positions[:, :: shape_list(positions)[1] - 1]


def span_edges(content: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
    """(B, H, L, d) queries or keys x (H, 2L, d) position rows -> (B, H, L, 2): the scores against `edge_rows`.
    One product for all blocks."""
    return position_scores(content, edge_rows(positions))


def beyond_span(edge: tf.Tensor, count, transposed: bool) -> tf.Tensor:
    """(B, H, n, 1) scores of a block's queries (keys) against the first or last position row -> (B, H, n, count),
    or (B, H, count, n) when transposed: the one score each has against every position beyond the span,
    repeated."""
    scores = tf.broadcast_to(edge, [*shape_list(edge)[:-1], count])
    return tf.linalg.matrix_transpose(scores) if transposed else scores


def concat(parts: list, axis: int) -> tf.Tensor:
    return tf.concat(parts, axis=axis) if len(parts) > 1 else parts[0]


def check_ids(ids: tf.Tensor, limit: int, name: str) -> tf.Tensor:
    """`ids`, after checking that they lie in [0, limit): an embedding gather would fail or, on GPU,
    silently return zeros. Eagerly a ValueError naming `name`; in a graph, asserts that run before the
    returned ids are used (XLA drops asserts: compiled code is unchecked)."""
    if tf.executing_eagerly():
        if tf.size(ids) > 0:
            low, high = int(tf.reduce_min(ids)), int(tf.reduce_max(ids))
            if low < 0 or high >= limit:
                raise ValueError(f"{name} must be in [0, {limit}), got values in [{low}, {high}]")
        return ids
    message = f"{name} must be in [0, {limit})"
    checks = [
        tf.debugging.assert_greater_equal(ids, tf.constant(0, ids.dtype), message=message),
        tf.debugging.assert_less(ids, tf.constant(limit, ids.dtype), message=message),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(ids)


def token_mask(attention_mask: tf.Tensor) -> tf.Tensor:
    """(B, L) token mask or (B, L, L) pair mask -> (B, L): position i is a token where it may attend to itself."""
    return attention_mask if attention_mask.shape.rank == 2 else tf.linalg.diag_part(attention_mask)


def pair_mask(attention_mask: tf.Tensor) -> tf.Tensor:
    """The layers' (B, 1, 1, L) key mask (query i is a token where key i is) or (B, 1, L, L) pair mask ->
    (B, 1, L, L) bool, True where query i may attend to key j."""
    if attention_mask.shape[-2] == 1:
        return attention_mask & tf.transpose(attention_mask, [0, 1, 3, 2])
    return attention_mask


def mask_bias(mask: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """bool mask -> the additive bias of the same shape in `dtype`: 0 where True, half the finite minimum of
    `dtype` (of float32 for float64) where False, so that rows with no valid key stay NaN-free in that dtype."""
    fill = max(tf.as_dtype(dtype).min, tf.float32.min) / 2
    return tf.cast(tf.where(mask, 0.0, fill), dtype)


def check_mask(attention_mask: tf.Tensor) -> tf.Tensor:
    """The mask, after checking that it holds only 0 and 1 (other values would scale the embeddings): eagerly a
    ValueError, in a graph an assert (XLA drops asserts)."""
    bad = tf.logical_and(tf.not_equal(attention_mask, 0), tf.not_equal(attention_mask, 1))
    if tf.executing_eagerly():
        if bool(tf.reduce_any(bad)):
            raise ValueError(f"attention_mask must hold only 0 and 1, got {tf.boolean_mask(attention_mask, bad)[0].numpy()}")
        return attention_mask
    check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), ["attention_mask must hold only 0 and 1"])
    with tf.control_dependencies([check]):
        return tf.identity(attention_mask)


class TFDebertaLayerBase(DebertaKerasMixin, keras.layers.Layer):
    """A DeBERTa sub-layer: holds the config, builds from it, serialises as it."""


# ----------------------------------------------------------------------------- embeddings
@register
class TFDebertaEmbeddings(TFDebertaLayerBase):
    """Token (+ absolute position, + token type) embeddings -> (B, L, hidden), zeroed at padded positions."""

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.word_embeddings = self.make_embedding(config.vocab_size, config.embedding_size, "word_embeddings")
        self.position_biased_input = config.position_biased_input
        if config.absolute_position_table:
            self.position_embeddings = self.make_embedding(
                config.max_position_embeddings, config.embedding_size, "position_embeddings"
            )
        if config.type_vocab_size > 0:
            self.token_type_embeddings = self.make_embedding(
                config.type_vocab_size, config.embedding_size, "token_type_embeddings"
            )
        if config.embedding_size != config.hidden_size:
            self.embed_proj = self.make_dense(config.hidden_size, "embed_proj", use_bias=False)
        self.LayerNorm = self.make_layer_norm()
        self.dropout = self.make_dropout(config.hidden_dropout_prob)

    def build(self, input_shape=None) -> None:
        config = self.config
        build_once(self.word_embeddings)
        # As torch's nn.Embedding(padding_idx=...): the padding row starts at zero.
        table = self.word_embeddings.embeddings
        table.assign(tf.tensor_scatter_nd_update(
            table.value, [[config.pad_token_id]], tf.zeros([1, config.embedding_size], table.dtype)
        ))
        if config.absolute_position_table:
            build_once(self.position_embeddings)
        if config.type_vocab_size > 0:
            build_once(self.token_type_embeddings)
        if config.embedding_size != config.hidden_size:
            build_once(self.embed_proj, (None, None, config.embedding_size))
        build_once(self.LayerNorm, (None, None, config.hidden_size))

    def get_input_embeddings(self) -> keras.layers.Embedding:
        return self.word_embeddings

    def call(
        self,
        input_ids: Optional[tf.Tensor],
        token_type_ids: tf.Tensor,
        position_ids: Optional[tf.Tensor],
        mask: tf.Tensor,
        inputs_embeds: Optional[tf.Tensor],
    ) -> tf.Tensor:
        if inputs_embeds is None:
            input_ids = check_ids(input_ids, self.config.vocab_size, "input_ids")
            inputs_embeds = self.word_embeddings(input_ids)
            # As nn.Embedding(padding_idx=...): the padding row gets no gradient.
            is_pad = tf.equal(input_ids, tf.constant(self.config.pad_token_id, input_ids.dtype))[:, :, None]
            inputs_embeds = tf.where(is_pad, tf.stop_gradient(inputs_embeds), inputs_embeds)
        embeddings = inputs_embeds
        if self.position_biased_input:
            if position_ids is None:
                length = shape_list(embeddings)[1]
                if isinstance(length, int) and length > self.config.max_position_embeddings:
                    raise ValueError(
                        f"sequence length {length} exceeds max_position_embeddings "
                        f"({self.config.max_position_embeddings}) of this model's absolute positions"
                    )
                position_ids = tf.range(length)[None, :]
            position_ids = check_ids(position_ids, self.config.max_position_embeddings, "position_ids")
            embeddings = embeddings + self.position_embeddings(position_ids)
        if self.config.type_vocab_size > 0:
            token_type_ids = check_ids(token_type_ids, self.config.type_vocab_size, "token_type_ids")
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        if self.config.embedding_size != self.config.hidden_size:
            embeddings = self.embed_proj(embeddings)
        embeddings = self.LayerNorm(embeddings)
        embeddings = embeddings * tf.cast(mask, embeddings.dtype)[:, :, None]
        return self.dropout(embeddings)


# ----------------------------------------------------------------------------- attention
@register
class TFDisentangledSelfAttention(TFDebertaLayerBase):
    """Content-to-content plus c2p / p2c relative-position attention (B, L, hidden) -> (B, L, hidden)."""

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = config.hidden_size
        # Per-head interleaved q/k/v columns, as the original checkpoints store them.
        self.in_proj = self.make_dense(self.all_head_size * 3, "in_proj", use_bias=False)
        self.pos_att_type = config.pos_att_type
        self.scale_factor = config.scale_factor
        self.relative_attention = config.relative_attention
        self.talking_head = config.talking_head
        self.relative_block = rules.RELATIVE_BLOCK
        self.query_block = QUERY_BLOCK
        self.blocked_scores_bytes = BLOCKED_SCORES_BYTES
        self.max_relative_positions = config.attention_span
        if self.talking_head:
            self.head_logits_proj = self.make_dense(config.num_attention_heads, "head_logits_proj", use_bias=False)
            self.head_weights_proj = self.make_dense(config.num_attention_heads, "head_weights_proj", use_bias=False)
        if self.relative_attention:
            self.pos_dropout = self.make_dropout(config.hidden_dropout_prob, "pos_dropout")
            if "c2p" in self.pos_att_type or "p2p" in self.pos_att_type:
                self.pos_proj = self.make_dense(self.all_head_size, "pos_proj", use_bias=False)
            if "p2c" in self.pos_att_type or "p2p" in self.pos_att_type:
                self.pos_q_proj = self.make_dense(self.all_head_size, "pos_q_proj")
        self.dropout = self.make_dropout(config.attention_probs_dropout_prob)

    def build(self, input_shape=None) -> None:
        hidden = (None, None, self.config.hidden_size)
        build_once(self.in_proj, hidden)
        self.q_bias = self.add_weight(shape=(self.all_head_size,), initializer="zeros", name="q_bias")
        self.v_bias = self.add_weight(shape=(self.all_head_size,), initializer="zeros", name="v_bias")
        if self.talking_head:
            build_once(self.head_logits_proj, (None, None, None, self.num_attention_heads))
            build_once(self.head_weights_proj, (None, None, None, self.num_attention_heads))
        if self.relative_attention:
            if "c2p" in self.pos_att_type or "p2p" in self.pos_att_type:
                build_once(self.pos_proj, hidden)
            if "p2c" in self.pos_att_type or "p2p" in self.pos_att_type:
                build_once(self.pos_q_proj, hidden)

    def transpose_for_scores(self, x: tf.Tensor) -> tf.Tensor:
        """(B, L, H*k) -> (B, H, L, k)."""
        batch, length = shape_list(x)[:2]
        x = tf.reshape(x, [batch, length, self.num_attention_heads, -1])
        return tf.transpose(x, [0, 2, 1, 3])

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_mask: tf.Tensor,
        output_attentions: bool = False,
        rel_embeddings: Optional[tf.Tensor] = None,
        query_states: Optional[tf.Tensor] = None,
        training: bool = False,
    ) -> tuple[tf.Tensor, Optional[tf.Tensor]]:
        """attention_mask: (B, 1, 1, L) or (B, 1, L, L) bool (`TFDebertaEncoder.get_attention_mask`).
        rel_embeddings: (2L, hidden), the rows for distances -L .. L-1 (see `build_relative_position`).
        query_states: (B, L, hidden) to build the queries from instead of hidden_states (the Enhanced Mask
        Decoder); keys and values always come from hidden_states.
        Returns the context (B, L, hidden) and, with output_attentions, the probabilities (B, H, L, L)."""
        projected = self.in_projection(hidden_states)
        query_layer, key_layer, value_layer = tf.split(self.transpose_for_scores(projected), 3, axis=-1)
        if query_states is not None:
            query_layer = tf.split(self.transpose_for_scores(self.in_projection(query_states)), 3, axis=-1)[0]
        scale = math.sqrt(self.attention_head_size * self.scale_factor)
        query_layer = query_layer / scale

        batch, length = shape_list(hidden_states)[:2]
        blocked = self.use_blocked_attention(batch, length, output_attentions, training)
        pos_key_layer = pos_query_layer = None
        if self.relative_attention and any(t in self.pos_att_type for t in ("c2p", "p2c", "p2p")):
            pos_key_layer, pos_query_layer = self.position_layers(
                self.pos_dropout(rel_embeddings), anchor=hidden_states[0, :1] if blocked else None
            )

        if blocked:
            context_layer = self.blocked_attention(
                query_layer, key_layer, value_layer, attention_mask, pos_key_layer, pos_query_layer
            )
            attention_probs = None
        else:
            rel_att = None
            if pos_key_layer is not None or pos_query_layer is not None:
                rel_att = self.disentangled_att_bias(query_layer, key_layer, pos_key_layer, pos_query_layer)
            context_layer, attention_probs = self.eager_attention(
                query_layer, key_layer, value_layer, pair_mask(attention_mask), rel_att
            )
        context_layer = tf.reshape(tf.transpose(context_layer, [0, 2, 1, 3]), [batch, length, self.all_head_size])
        return context_layer, attention_probs

    def in_projection(self, hidden_states: tf.Tensor) -> tf.Tensor:
        """(B, L, hidden) -> in_proj plus q_bias and v_bias: (B, L, H * 3d), per head q, k, v as in_proj's columns;
        one add of both biases, interleaved per head."""
        heads = self.num_attention_heads
        q_bias, v_bias = tf.reshape(self.q_bias, [heads, -1]), tf.reshape(self.v_bias, [heads, -1])
        bias = tf.reshape(tf.stack([q_bias, tf.zeros_like(q_bias), v_bias], axis=1), [-1])
        return self.in_proj(hidden_states) + bias

    def eager_attention(self, query_layer, key_layer, value_layer, attention_mask, rel_att):
        """Plain softmax attention under a (B, 1, n, L) pair mask (`pair_mask`); masked probabilities are exactly
        0, rows with no valid key all 0. The scores are normalised in float32 whatever the compute dtype.

        The mask is an additive bias (`mask_bias`), added to the relative scores before they meet the content
        scores: XLA then writes the sum once and the softmax reads it, where with the mask filled in by a select
        it summed the three again for the exponentials; the bias added last did not help (a 2 x 512 forward 4.7 %
        faster on CPU, docs/performance.md). Talking heads mix the heads' scores, so there the mask is filled in
        after.
        """
        attention_scores = tf.matmul(query_layer, key_layer, transpose_b=True)
        if self.talking_head:
            if rel_att is not None:
                attention_scores = attention_scores + rel_att
            attention_scores = tf.transpose(
                self.head_logits_proj(tf.transpose(attention_scores, [0, 2, 3, 1])), [0, 3, 1, 2]
            )
            attention_scores = tf.where(attention_mask, tf.cast(attention_scores, tf.float32), tf.float32.min)
        else:
            bias = mask_bias(attention_mask, attention_scores.dtype)
            if rel_att is not None:
                bias = rel_att + bias
            attention_scores = tf.cast(attention_scores + bias, tf.float32)
        attention_probs = tf.where(attention_mask, tf.nn.softmax(attention_scores, axis=-1), 0.0)
        attention_probs = self.dropout(tf.cast(attention_probs, value_layer.dtype))
        if self.talking_head:
            attention_probs = tf.transpose(
                self.head_weights_proj(tf.transpose(attention_probs, [0, 2, 3, 1])), [0, 3, 1, 2]
            )
        return tf.matmul(attention_probs, value_layer), attention_probs

    def use_blocked_attention(self, batch, length, output_attentions: bool, training: bool) -> bool:
        """Whether `blocked_attention` runs: in inference with static shapes, when a layer's float32 scores would
        take more than `blocked_scores_bytes`. Training keeps `eager_attention`: its backward holds every block's
        scores anyway, and with the loop a training step was slower and no smaller (docs/performance.md)."""
        if output_attentions or training or not (isinstance(batch, int) and isinstance(length, int)):
            return False
        scores_bytes = 4 * batch * self.num_attention_heads * length * length
        return length > self.query_block and scores_bytes > self.blocked_scores_bytes

    def blocked_attention(self, query_layer, key_layer, value_layer, attention_mask, pos_key_layer, pos_query_layer):
        """`eager_attention` per block of queries, one block after the other in a `tf.while_loop`: (B, H, L, d).

        TensorFlow has no fused attention kernel that takes a bias, and XLA's scheduler computes independent
        blocks side by side, so only a loop bounds the scores, c2p, p2c and probabilities to (B, H, n, L) at a
        time. The p2c of a block of queries reads every key, those beyond the span too: where there are any
        (L > span), p2c is built whole before the loop (`relative_scores` skips them) and sliced in it, as is
        p2p. The L queries form k = ceil(L / query_block) blocks of n = ceil(L / k); the last one starts at
        L - n, so it may compute again up to k - 1 queries of the one before it, and writes the same values.
        """
        length = shape_list(query_layer)[-2]
        count = -(-length // self.query_block)
        size = -(-length // count)
        span = rules.relative_span(length, length, self.max_relative_positions)
        p2c = "p2c" in self.pos_att_type and pos_query_layer is not None
        p2c_att = p2p_att = None
        if p2c and length > span:
            p2c_att = self.relative_scores(key_layer, pos_query_layer, transposed=True)
        if "p2p" in self.pos_att_type and pos_query_layer is not None:
            p2p_att = self.p2p_scores(pos_key_layer, pos_query_layer, length)
        attention_mask = pair_mask(attention_mask)

        def rows(x: tf.Tensor, start: tf.Tensor) -> tf.Tensor:  # x[..., start : start + size, :]
            *outer, _, width = shape_list(x)
            return tf.slice(x, [0] * len(outer) + [start, 0], [*outer, size, width])

        def attend(index: tf.Tensor, context: tf.Tensor) -> tuple:
            start = tf.minimum(index * size, length - size)
            queries = rows(query_layer, start)
            terms = [rows(scores, start) for scores in (p2c_att, p2p_att) if scores is not None]
            if "c2p" in self.pos_att_type and pos_key_layer is not None:
                terms.append(self.c2p_block(queries, pos_key_layer, start))
            if p2c and p2c_att is None:
                terms.append(self.p2c_block(key_layer, pos_query_layer, start, size))
            bias = functools.reduce(tf.add, terms) if terms else None
            block = self.eager_attention(queries, key_layer, value_layer, rows(attention_mask, start), bias)[0]
            indices = (start + tf.range(size))[:, None]
            return index + 1, tf.tensor_scatter_nd_update(context, indices, tf.transpose(block, [2, 0, 1, 3]))

        # The loop carries the context query-major, (L, B, H, d), so that a block is a scatter of whole rows. It
        # starts from the values (every row is overwritten), not from zeros: XLA would allocate a constant start
        # for the loops of all layers up front.
        _, context = tf.while_loop(
            lambda index, _: index < count, attend, (tf.constant(0), tf.transpose(value_layer, [2, 0, 1, 3])),
            maximum_iterations=count, parallel_iterations=1,
        )
        return tf.transpose(context, [1, 2, 0, 3])

    def c2p_block(self, queries: tf.Tensor, pos_key_layer: tf.Tensor, start: tf.Tensor) -> tf.Tensor:
        """c2p of the n queries from `start` (a tensor): (B, H, n, d) -> (B, H, n, L), the same shapes for every
        block. Only a window of w = min(n + 2 span - 3, L) keys, which holds every key within the span of the
        block, is multiplied; beyond it each query has one score on each side (`rules.relative_windows`)."""
        size, length = shape_list(queries)[-2], shape_list(pos_key_layer)[-2] // 2
        span = rules.relative_span(length, length, self.max_relative_positions)
        width = min(size + 2 * span - 3, length)
        first = tf.clip_by_value(start - span + 2, 0, length - width)  # the window's first key
        heads, _, head_size = shape_list(pos_key_layer)
        window = tf.slice(pos_key_layer, [0, length - start - size + first, 0], [heads, size + width, head_size])
        band = relative_band(position_scores(queries, window), width, False)
        if width == length:
            return band
        # the band between the scores against the first and the last position row, then cut to the L keys
        outside = length - width
        edges = span_edges(queries, pos_key_layer)
        wide = concat([
            beyond_span(edges[..., :1], outside, False), band, beyond_span(edges[..., 1:], outside, False)
        ], axis=-1)
        return tf.slice(wide, [0, 0, 0, outside - first], [*shape_list(wide)[:-1], length])

    def p2c_block(self, key_layer: tf.Tensor, pos_query_layer: tf.Tensor, start: tf.Tensor, size: int) -> tf.Tensor:
        """p2c of the n = `size` queries from `start` (a tensor) against the L keys: (B, H, n, L). Per block of
        m = relative_block keys, each multiplied with the m + n position queries its band reads."""
        length = shape_list(key_layer)[-2]
        heads, _, head_size = shape_list(pos_query_layer)
        blocks = []
        for first in range(0, length, self.relative_block):
            last = min(first + self.relative_block, length)
            window = tf.slice(pos_query_layer, [0, length - last + start, 0], [heads, last - first + size, head_size])
            blocks.append(relative_band(position_scores(key_layer[:, :, first:last], window), size, True))
        return concat(blocks, axis=-1)

    def position_layers(self, rel_embeddings: tf.Tensor, anchor: Optional[tf.Tensor] = None) -> tuple:
        """The position keys of the reversed rows (for c2p and p2p) and the position queries, divided by the
        scale (for p2c and p2p), of the (2L, hidden) rows: (H, 2L, d) each, None where not used.

        anchor (1, hidden), one row of this layer's input, is projected with the rows and dropped. Otherwise the
        projections depend on nothing the layer computes, and XLA's scheduler computes every layer's at the start
        and holds them all: about 100 MiB at length 512 in float32. Only `blocked_attention` anchors them; in the
        plain path at 2 x 512 the order it brings made XLA's buffer assignment 50 MiB larger (measured)."""
        skip = 0 if anchor is None else 1
        rows = rel_embeddings if anchor is None else tf.concat([anchor, rel_embeddings], axis=0)
        pos_key_layer = pos_query_layer = None
        if "c2p" in self.pos_att_type or "p2p" in self.pos_att_type:
            # rows reversed, so that each query's distances form one band of its scores
            pos_key_layer = self.transpose_for_scores(tf.reverse(self.pos_proj(rows)[skip:], [0])[None])[0]
        if "p2c" in self.pos_att_type or "p2p" in self.pos_att_type:
            pos_query_layer = self.transpose_for_scores(self.pos_q_proj(rows)[skip:][None])[0]
            pos_query_layer = pos_query_layer / math.sqrt(self.attention_head_size * self.scale_factor)
        return pos_key_layer, pos_query_layer

    def p2p_scores(self, pos_key_layer: tf.Tensor, pos_query_layer: tf.Tensor, length) -> tf.Tensor:
        """p2p (H, L, L): the position query of query i is the row of distance i (rows L .. 2L-1), so the scores
        do not depend on the batch."""
        return relative_band(tf.matmul(pos_query_layer[:, length:], pos_key_layer, transpose_b=True), length, False)

    def disentangled_att_bias(self, query_layer, key_layer, pos_key_layer, pos_query_layer) -> tf.Tensor:
        """c2p[i, j] = q_i . Kr[i - j], p2c[i, j] = k_j . Qr[i - j] and p2p[i, j] = Qr[i] . Kr[i - j], where
        Kr / Qr are the position keys / queries (`position_layers`) of the row of a distance: (B, H, L, L).

        query_layer and the position queries are already divided by the scale. c2p is built per block of queries
        and p2c per block of keys (`rules.relative_windows`), then concatenated.
        """
        score = 0
        length = shape_list(query_layer)[-2]
        if "c2p" in self.pos_att_type:
            score = score + self.relative_scores(query_layer, pos_key_layer, transposed=False)
        if "p2c" in self.pos_att_type:
            score = score + self.relative_scores(key_layer, pos_query_layer, transposed=True)
        if "p2p" in self.pos_att_type:
            score = score + self.p2p_scores(pos_key_layer, pos_query_layer, length)
        return score

    def relative_scores(self, content: tf.Tensor, positions: tf.Tensor, transposed: bool) -> tf.Tensor:
        """c2p (content: queries (B, H, L, d), positions: the reversed position keys (H, 2L, d)) or, transposed,
        p2c (content: keys, positions: the position queries): (B, H, L, L). Per block of queries (keys),
        `rules.relative_windows`, concatenated."""
        length = shape_list(content)[-2]
        blocks = []
        windows = rules.relative_windows(length, self.max_relative_positions, transposed, self.relative_block)
        # beyond the span every distance reads the first or last row: one score per query (key) and side
        beyond = isinstance(length, int) and any(
            inner_start > 0 or inner_stop < length for _, _, inner_start, inner_stop, _, _ in windows
        )
        edges = span_edges(content, positions) if beyond else None
        for start, stop, inner_start, inner_stop, lo, hi in windows:
            block = content[:, :, start:stop]
            band = relative_band(position_scores(block, positions[:, lo:hi]), inner_stop - inner_start, transposed)
            pieces = [band]
            if beyond and inner_start > 0:
                pieces.insert(0, beyond_span(edges[:, :, start:stop, :1], inner_start, transposed))
            if beyond and inner_stop < length:
                pieces.append(beyond_span(edges[:, :, start:stop, 1:], length - inner_stop, transposed))
            blocks.append(concat(pieces, axis=-2 if transposed else -1))
        return concat(blocks, axis=-1 if transposed else -2)


@register
class TFDebertaSelfOutput(TFDebertaLayerBase):
    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dense = self.make_dense(config.hidden_size, "dense")
        self.LayerNorm = self.make_layer_norm()
        self.dropout = self.make_dropout(config.hidden_dropout_prob)

    def build(self, input_shape=None) -> None:
        build_once(self.dense, (None, None, self.config.hidden_size))
        build_once(self.LayerNorm, (None, None, self.config.hidden_size))

    def call(self, hidden_states: tf.Tensor, input_tensor: tf.Tensor) -> tf.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


@register
class TFDebertaAttention(TFDebertaLayerBase):
    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.self = TFDisentangledSelfAttention(config, **self.child("self"))
        # Keras reserves the attribute `output` (and would not save it): torch's `output` is the layer's name.
        self.dense_output = TFDebertaSelfOutput(config, **self.child("output"))

    def build(self, input_shape=None) -> None:
        build_once(self.self)
        build_once(self.dense_output)

    def call(self, hidden_states, attention_mask, output_attentions=False, rel_embeddings=None, query_states=None):
        self_output, attention_probs = self.self(
            hidden_states, attention_mask, output_attentions=output_attentions, rel_embeddings=rel_embeddings,
            query_states=query_states,
        )
        residual = hidden_states if query_states is None else query_states
        return self.dense_output(self_output, residual), attention_probs


@register
class TFDebertaIntermediate(TFDebertaLayerBase):
    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dense = self.make_dense(config.intermediate_size, "dense")
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def build(self, input_shape=None) -> None:
        build_once(self.dense, (None, None, self.config.hidden_size))

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


@register
class TFDebertaOutput(TFDebertaLayerBase):
    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dense = self.make_dense(config.hidden_size, "dense")
        self.LayerNorm = self.make_layer_norm()
        self.dropout = self.make_dropout(config.hidden_dropout_prob)

    def build(self, input_shape=None) -> None:
        build_once(self.dense, (None, None, self.config.intermediate_size))
        build_once(self.LayerNorm, (None, None, self.config.hidden_size))

    def call(self, hidden_states: tf.Tensor, input_tensor: tf.Tensor) -> tf.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


@register
class TFDebertaLayer(TFDebertaLayerBase):
    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.attention = TFDebertaAttention(config, **self.child("attention"))
        self.intermediate = TFDebertaIntermediate(config, **self.child("intermediate"))
        self.dense_output = TFDebertaOutput(config, **self.child("output"))  # Keras reserves `output`

    def build(self, input_shape=None) -> None:
        build_once(self.attention)
        build_once(self.intermediate)
        build_once(self.dense_output)

    def call(self, hidden_states, attention_mask, output_attentions=False, rel_embeddings=None, query_states=None):
        attention_output, attention_probs = self.attention(
            hidden_states, attention_mask, output_attentions=output_attentions, rel_embeddings=rel_embeddings,
            query_states=query_states,
        )
        layer_output = self.dense_output(self.intermediate(attention_output), attention_output)
        return layer_output, attention_probs


@register
class TFDebertaEncoder(TFDebertaLayerBase):
    """The layer stack with the relative-position embeddings (2R, hidden) that every layer shares."""

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        # The established TensorFlow checkpoints name the layers `layer_._0`, `layer_._1`, ...
        self.layer = [TFDebertaLayer(config, **self.child(f"layer_._{i}")) for i in range(config.num_hidden_layers)]
        self.relative_attention = config.relative_attention
        self.max_relative_positions = config.attention_span
        if self.relative_attention:
            self.rel_embeddings = self.make_embedding(self.max_relative_positions * 2, config.hidden_size, "rel_embeddings")

    def build(self, input_shape=None) -> None:
        for layer_module in self.layer:
            build_once(layer_module)
        if self.relative_attention:
            build_once(self.rel_embeddings)

    def get_attention_mask(self, attention_mask: tf.Tensor) -> tf.Tensor:
        """(B, L) token mask -> (B, 1, 1, L) bool key mask, a query being a token where its key is (as in the
        PyTorch model, whose fused path adds it as a key bias); (B, L, L) pair mask -> (B, 1, L, L) bool, with
        every pair of a padded position (`token_mask`) masked."""
        valid = tf.cast(attention_mask, tf.bool)
        if valid.shape.rank == 2:
            return valid[:, None, None, :]
        token = token_mask(valid)
        return (valid & token[:, None, :] & token[:, :, None])[:, None]

    def get_rel_embeddings(self, length) -> Optional[tf.Tensor]:
        """(2L, hidden) relative embeddings for the distances -L .. L-1, or None without relative attention.
        length: an int, or a scalar tensor where the length is unknown at trace time."""
        if not self.relative_attention:
            return None
        r = self.max_relative_positions
        span = rules.relative_span(length, length, r) if isinstance(length, int) else tf.minimum(length, r)
        return tf.gather(self.rel_embeddings.embeddings, build_relative_position(length, span, r))

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_mask: tf.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> BaseModelOutput:
        """attention_mask: (B, L), 1 for tokens, 0 for padding; or (B, L, L), 1 where query i may attend to key j."""
        layer_mask = self.get_attention_mask(attention_mask)
        rel_embeddings = self.get_rel_embeddings(shape_list(hidden_states)[1])

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer_module in self.layer:
            hidden_states, attention_probs = layer_module(
                hidden_states, layer_mask, output_attentions=output_attentions, rel_embeddings=rel_embeddings
            )
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (hidden_states,)
            if output_attentions:
                all_attentions = all_attentions + (attention_probs,)
        return BaseModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )


# ----------------------------------------------------------------------------- base model
@register
class TFDebertaModel(TFDebertaPreTrainedModel):
    """The bare encoder: last_hidden_state (B, L, hidden)."""

    keras_output_names = ("last_hidden_state",)
    label_names = ()

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.embeddings = TFDebertaEmbeddings(config, **self.child("embeddings"))
        self.encoder = TFDebertaEncoder(config, **self.child("encoder"))
        self.post_init()

    def build(self, input_shape=None) -> None:
        build_once(self.embeddings)
        build_once(self.encoder)

    def get_input_embeddings(self) -> keras.layers.Embedding:
        return self.embeddings.word_embeddings

    @unpack_inputs
    def call(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        training=False,
    ):
        def shape_of(x: Optional[tf.Tensor]) -> Optional[tuple]:
            return None if x is None else tuple(x.shape) if x.shape.rank is not None else (None, None)

        rules.check_input_shapes(
            shape_of(input_ids), shape_of(inputs_embeds), attention_mask=shape_of(attention_mask),
            token_type_ids=shape_of(token_type_ids), position_ids=shape_of(position_ids),
        )
        rules.check_pair_mask(self.config, shape_of(attention_mask))
        if input_ids is not None and not input_ids.dtype.is_integer:
            raise TypeError(f"input_ids must be integers, got {input_ids.dtype.name}")
        if inputs_embeds is not None:
            inputs_embeds = tf.cast(inputs_embeds, self.compute_dtype)
        shape = shape_list(input_ids if input_ids is not None else inputs_embeds)[:2]
        if attention_mask is None:
            attention_mask = tf.ones(shape, dtype=tf.int32)
        else:
            attention_mask = check_mask(attention_mask)
        if token_type_ids is None:
            token_type_ids = tf.zeros(shape, dtype=tf.int32)

        embedding_output = self.embeddings(
            input_ids, token_type_ids, position_ids, token_mask(attention_mask), inputs_embeds
        )
        result = self.encoder(
            embedding_output,
            attention_mask,
            output_hidden_states=bool(output_hidden_states),
            output_attentions=bool(output_attentions),
        )
        return result if self._return_dict(return_dict) else result.to_tuple()


# ----------------------------------------------------------------------------- heads
def vocab_logits(hidden: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """(..., E) states x (V, E) word weights + (V,) bias -> (..., V) logits. The PyTorch model pads the
    vocabulary to aligned rows on a GPU (cuBLAS); not done here, where no GPU with TensorFlow was at hand to
    measure it."""
    return tf.matmul(hidden, weight, transpose_b=True) + bias


@register
class TFDebertaPredictionHeadTransform(TFDebertaLayerBase):
    """dense -> activation -> LayerNorm, hidden -> embedding_size (legacy MLM head)."""

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dense = self.make_dense(config.embedding_size, "dense")
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = self.make_layer_norm()

    def build(self, input_shape=None) -> None:
        build_once(self.dense, (None, None, self.config.hidden_size))
        build_once(self.LayerNorm, (None, None, self.config.embedding_size))

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


@register
class TFDebertaLMPredictionHead(TFDebertaLayerBase):
    """Legacy head (`cls.predictions.*`): transform, then a decoder tied to the word embeddings (passed in,
    (vocab_size, embedding_size)), plus a bias."""

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.transform = TFDebertaPredictionHeadTransform(config, **self.child("transform"))

    def build(self, input_shape=None) -> None:
        build_once(self.transform)
        self.bias = self.add_weight(shape=(self.config.vocab_size,), initializer="zeros", name="bias")

    def call(self, hidden_states: tf.Tensor, word_embeddings: tf.Tensor) -> tf.Tensor:
        return vocab_logits(self.transform(hidden_states), word_embeddings, self.bias)


@register
class TFDebertaOnlyMLMHead(TFDebertaLayerBase):
    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.predictions = TFDebertaLMPredictionHead(config, **self.child("predictions"))

    def build(self, input_shape=None) -> None:
        build_once(self.predictions)

    def call(self, sequence_output: tf.Tensor, word_embeddings: tf.Tensor) -> tf.Tensor:
        return self.predictions(sequence_output, word_embeddings)


@register
class TFDebertaLMHead(TFDebertaLayerBase):
    """Original head (`lm_predictions.lm_head.*`): dense, activation, LayerNorm, then scores against the
    word embeddings passed in, plus a bias. dense maps hidden -> embedding_size so that a model with an
    embedding projection works too."""

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dense = self.make_dense(config.embedding_size, "dense")
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = self.make_layer_norm()

    def build(self, input_shape=None) -> None:
        build_once(self.dense, (None, None, self.config.hidden_size))
        build_once(self.LayerNorm, (None, None, self.config.embedding_size))
        self.bias = self.add_weight(shape=(self.config.vocab_size,), initializer="zeros", name="bias")

    def call(self, hidden_states: tf.Tensor, word_embeddings: tf.Tensor) -> tf.Tensor:
        hidden_states = self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))
        return vocab_logits(hidden_states, word_embeddings, self.bias)


@register
class TFDebertaLMPredictions(TFDebertaLayerBase):
    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.lm_head = TFDebertaLMHead(config, **self.child("lm_head"))

    def build(self, input_shape=None) -> None:
        build_once(self.lm_head)

    def call(self, sequence_output: tf.Tensor, word_embeddings: tf.Tensor) -> tf.Tensor:
        return self.lm_head(sequence_output, word_embeddings)


def masked_cross_entropy(logits: tf.Tensor, labels: tf.Tensor, ignore_index) -> tf.Tensor:
    """Mean float32 cross-entropy of logits (..., C) over the labels (...) that are not `ignore_index`;
    0 (not NaN) when every label is ignored."""
    num_classes = shape_list(logits)[-1]
    logits = tf.cast(tf.reshape(logits, [-1, num_classes]), tf.float32)
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    kept = tf.not_equal(labels, ignore_index)
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.where(kept, labels, 0), logits=logits)
    kept = tf.cast(kept, tf.float32)
    return tf.reduce_sum(per_example * kept) / tf.maximum(tf.reduce_sum(kept), 1.0)


@register
class TFDebertaForMaskedLM(TFDebertaPreTrainedModel):
    """logits (B, L, vocab_size); loss: cross-entropy over labels != -100."""

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.legacy = config.legacy
        self.deberta = TFDebertaModel(config, **self.child("deberta"))
        if self.legacy:
            self.cls = TFDebertaOnlyMLMHead(config, **self.child("cls"))
        else:
            self.lm_predictions = TFDebertaLMPredictions(config, **self.child("lm_predictions"))
        self.post_init()

    def build(self, input_shape=None) -> None:
        build_once(self.deberta)
        build_once(self.cls if self.legacy else self.lm_predictions)

    def compute_head_loss(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        return masked_cross_entropy(logits, labels, rules.IGNORE_INDEX)

    @unpack_inputs
    def call(
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
        training=False,
    ):
        emd = self.config.enhanced_mask_decoder
        outputs = self.deberta(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=bool(output_hidden_states) or emd,
            return_dict=True, training=training,
        )
        sequence_output = outputs.last_hidden_state
        if emd:
            sequence_output = self.enhanced_mask_decoder(outputs.hidden_states[-2], attention_mask, position_ids)
        word_embeddings = self.deberta.embeddings.word_embeddings.embeddings
        if self.legacy:
            logits = self.cls(sequence_output, word_embeddings)
        else:
            logits = self.lm_predictions(sequence_output, word_embeddings)
        loss = self.compute_head_loss(logits, labels) if labels is not None else None
        result = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states if output_hidden_states else None,
            attentions=outputs.attentions,
        )
        return result if self._return_dict(return_dict) else result.to_tuple()

    def enhanced_mask_decoder(
        self, hidden_states: tf.Tensor, attention_mask: Optional[tf.Tensor], position_ids: Optional[tf.Tensor]
    ) -> tf.Tensor:
        """The original DeBERTa's Enhanced Mask Decoder: (B, L, hidden) states to predict tokens from.

        Queries start as the absolute position embeddings plus the states entering the last layer,
        H = hidden_states (the second-to-last entry of `hidden_states`); the last encoder layer runs twice
        with keys and values from H and queries from the previous step.
        """
        batch, length = shape_list(hidden_states)[:2]
        if attention_mask is None:
            attention_mask = tf.ones([batch, length], dtype=tf.int32)
        if position_ids is None:
            position_ids = tf.range(length)[None, :]
        embeddings = self.deberta.embeddings
        position_ids = check_ids(position_ids, self.config.max_position_embeddings, "position_ids")
        positions = embeddings.position_embeddings(position_ids)
        if self.config.embedding_size != self.config.hidden_size:
            positions = embeddings.embed_proj(positions)
        encoder = self.deberta.encoder
        layer_mask = encoder.get_attention_mask(attention_mask)
        rel_embeddings = encoder.get_rel_embeddings(length)
        query_states = positions + hidden_states
        for _ in range(2):
            query_states, _ = encoder.layer[-1](
                hidden_states, layer_mask, rel_embeddings=rel_embeddings, query_states=query_states
            )
        return query_states


@register
class TFContextPooler(TFDebertaLayerBase):
    """The first token's hidden state -> dropout -> dense -> activation: (B, pooler_hidden_size)."""

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.dense = self.make_dense(config.pooler_hidden_size, "dense")
        self.dropout = self.make_dropout(config.pooler_dropout)
        self.activation = ACT2FN[config.pooler_hidden_act]

    def build(self, input_shape=None) -> None:
        build_once(self.dense, (None, self.config.hidden_size))

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        return self.activation(self.dense(self.dropout(hidden_states[:, 0])))


def sequence_classification_loss(logits: tf.Tensor, labels: tf.Tensor, config: DebertaConfig) -> tf.Tensor:
    """The loss chosen by `rules.sequence_classification_loss_kind`, as a float32 scalar."""
    kind = rules.sequence_classification_loss_kind(config.problem_type, config.num_labels, tuple(labels.shape))
    logits = tf.cast(logits, tf.float32)
    if kind == "regression":
        return tf.reduce_mean(tf.square(tf.reshape(logits, [-1]) - tf.reshape(tf.cast(labels, tf.float32), [-1])))
    if kind == "single_label":  # negative labels are not labelled
        labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        return masked_cross_entropy(logits, tf.where(labels >= 0, labels, rules.IGNORE_INDEX), rules.IGNORE_INDEX)
    labels = tf.cast(labels, tf.float32)
    if kind == "soft_label":
        return -tf.reduce_mean(tf.reduce_sum(tf.nn.log_softmax(logits, axis=-1) * labels, axis=-1))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


@register
class TFDebertaForSequenceClassification(TFDebertaPreTrainedModel):
    """logits (B, num_labels); loss per `rules.sequence_classification_loss_kind`."""

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.num_labels = config.num_labels
        self.deberta = TFDebertaModel(config, **self.child("deberta"))
        self.pooler = TFContextPooler(config, **self.child("pooler"))
        self.classifier = self.make_dense(config.num_labels, "classifier")
        drop = config.cls_dropout if config.cls_dropout is not None else config.hidden_dropout_prob
        self.dropout = self.make_dropout(drop)
        self.post_init()

    def build(self, input_shape=None) -> None:
        build_once(self.deberta)
        build_once(self.pooler)
        build_once(self.classifier, (None, self.config.pooler_hidden_size))

    def compute_head_loss(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        return sequence_classification_loss(logits, labels, self.config)

    @unpack_inputs
    def call(
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
        training=False,
    ):
        outputs = self.deberta(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=True, training=training,
        )
        pooled_output = self.dropout(self.pooler(outputs.last_hidden_state))
        logits = self.classifier(pooled_output)
        loss = self.compute_head_loss(logits, labels) if labels is not None else None
        result = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return result if self._return_dict(return_dict) else result.to_tuple()


@register
class TFDebertaForTokenClassification(TFDebertaPreTrainedModel):
    """logits (B, L, num_labels); loss: cross-entropy over labels != -100."""

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.num_labels = config.num_labels
        self.deberta = TFDebertaModel(config, **self.child("deberta"))
        self.dropout = self.make_dropout(config.hidden_dropout_prob)
        self.classifier = self.make_dense(config.num_labels, "classifier")
        self.post_init()

    def build(self, input_shape=None) -> None:
        build_once(self.deberta)
        build_once(self.classifier, (None, None, self.config.hidden_size))

    def compute_head_loss(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        return masked_cross_entropy(logits, labels, rules.IGNORE_INDEX)

    @unpack_inputs
    def call(
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
        training=False,
    ):
        outputs = self.deberta(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=True, training=training,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = self.compute_head_loss(logits, labels) if labels is not None else None
        result = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return result if self._return_dict(return_dict) else result.to_tuple()


@register
class TFDebertaForQuestionAnswering(TFDebertaPreTrainedModel):
    """start_logits, end_logits (B, L); loss: mean of start and end cross-entropy. Positions are clamped
    to [0, L]: negative ones count as 0, and L or beyond is ignored."""

    keras_output_names = ("start_logits", "end_logits")
    label_names = ("start_positions", "end_positions")

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.deberta = TFDebertaModel(config, **self.child("deberta"))
        self.qa_outputs = self.make_dense(2, "qa_outputs")
        self.post_init()

    def build(self, input_shape=None) -> None:
        build_once(self.deberta)
        build_once(self.qa_outputs, (None, None, self.config.hidden_size))

    def compute_head_loss(self, start_logits, end_logits, start_positions, end_positions) -> tf.Tensor:
        ignored_index = shape_list(start_logits)[1]

        def span_loss(span_logits: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
            positions = tf.clip_by_value(tf.reshape(tf.cast(positions, tf.int32), [-1]), 0, ignored_index)
            return masked_cross_entropy(span_logits, positions, ignored_index)

        return (span_loss(start_logits, start_positions) + span_loss(end_logits, end_positions)) / 2

    @unpack_inputs
    def call(
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
        training=False,
    ):
        outputs = self.deberta(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=True, training=training,
        )
        logits = self.qa_outputs(outputs.last_hidden_state)
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = self.compute_head_loss(start_logits, end_logits, start_positions, end_positions)
        result = QuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits,
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )
        return result if self._return_dict(return_dict) else result.to_tuple()


@register
class TFDebertaForMultipleChoice(TFDebertaPreTrainedModel):
    """Inputs (B, C, L) for C choices -> logits (B, C): the pooled first token of each choice, scored by a
    (pooler_hidden_size -> 1) classifier; loss: cross-entropy over the choices."""

    serving_input_rank = 3

    def __init__(self, config: DebertaConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.deberta = TFDebertaModel(config, **self.child("deberta"))
        self.pooler = TFContextPooler(config, **self.child("pooler"))
        self.classifier = self.make_dense(1, "classifier")
        drop = config.cls_dropout if config.cls_dropout is not None else config.hidden_dropout_prob
        self.dropout = self.make_dropout(drop)
        self.post_init()

    def build(self, input_shape=None) -> None:
        build_once(self.deberta)
        build_once(self.pooler)
        build_once(self.classifier, (None, self.config.pooler_hidden_size))

    def compute_head_loss(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        return masked_cross_entropy(logits, labels, rules.IGNORE_INDEX)

    @unpack_inputs
    def call(
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
        training=False,
    ):
        source = input_ids if input_ids is not None else inputs_embeds
        if source is None or source.shape.rank != (3 if input_ids is not None else 4):
            raise ValueError("multiple choice takes input_ids (batch, choices, length) or inputs_embeds "
                             "(batch, choices, length, embedding_size)")
        num_choices = shape_list(source)[1]

        def flat(x: Optional[tf.Tensor]) -> Optional[tf.Tensor]:
            return None if x is None else tf.reshape(x, [-1, *shape_list(x)[2:]])

        outputs = self.deberta(
            flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids), flat(inputs_embeds),
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=True, training=training,
        )
        pooled_output = self.dropout(self.pooler(outputs.last_hidden_state))
        logits = tf.reshape(self.classifier(pooled_output), [-1, num_choices])
        loss = self.compute_head_loss(logits, labels) if labels is not None else None
        result = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return result if self._return_dict(return_dict) else result.to_tuple()
