"""Framework-free rules both backends follow, written once: loss selection, span sizes, id checks."""

from __future__ import annotations

import math
from typing import Sequence

# The label value that every token-level loss ignores (masked-LM and token classification).
IGNORE_INDEX = -100


def sequence_classification_loss_kind(
    problem_type: str | None, num_labels: int, labels_shape: Sequence[int]
) -> str:
    """Which loss `ForSequenceClassification` computes, as DeBERTa users expect it.

    Returns one of:
    - "regression": mean squared error between logits and float labels;
    - "single_label": cross-entropy over the examples whose label is >= 0 (negative labels are ignored);
    - "soft_label": -(log_softmax(logits) * labels).sum(-1).mean() for label distributions (B, num_labels);
    - "multi_label": binary cross-entropy with logits, labels (B, num_labels) in {0, 1}.
    With `problem_type` unset, the kind follows from `num_labels` and the labels' shape; a config's
    `problem_type` is honoured as given.
    """
    if problem_type == "regression":
        return "regression"
    if problem_type == "single_label_classification":
        return "single_label"
    if problem_type == "multi_label_classification":
        return "multi_label"
    if num_labels == 1:
        return "regression"
    if len(labels_shape) == 1 or labels_shape[-1] == 1:
        return "single_label"
    return "soft_label"


def relative_span(query_size: int, key_size: int, max_relative_positions: int) -> int:
    """The number of relative distances attended on each side: min(max(Lq, Lk), R)."""
    return min(max(query_size, key_size), max_relative_positions)


# Queries (c2p) or keys (p2c) per block of relative-position scores. A block of n reads n + L of the 2L
# position rows at most, not all of them, and its scores stay small enough to be shifted while still in cache.
RELATIVE_BLOCK = 256

# A block's window of position rows is widened to a multiple of this many rows where the table has them: its
# products' rows then start 16-byte aligned, which cuBLAS's fast GEMM kernels need (at 4 x 2048 on an H200 the
# products of widths such as 1533 ran in an old CUTLASS kernel, 8.7 ms of a bfloat16 forward's 42.5 ms of
# kernels; 2.8 ms aligned). The band reads none of the extra columns.
ROW_ALIGNMENT = 8


def relative_windows(length, max_relative_positions: int, transposed: bool, block: int = RELATIVE_BLOCK,
                     static: bool | None = None) -> list:
    """(start, stop, inner_start, inner_stop, row_start, row_stop) per block of a length-L sequence's queries
    (c2p) or, transposed, keys (p2c).

    inner: the keys (c2p) or queries (p2c) within the span of some member of the block. Distances
    d = i - j >= span - 1 all read the last position row and d <= -span the first (the original clamping), so
    outside `inner` a block's scores are one value per query (key), taken from row 0 or 2L - 1 of the table.
    rows: the window of the 2L rows that the inner scores read: (n, n + inner) scores whose diagonal band
    holds them, widened to a multiple of `ROW_ALIGNMENT` rows where the table has them. A length known only
    when the model runs (a TensorFlow tensor, a symbolic size under torch.export or a dynamic torch.compile)
    gets one block of all 2L rows, so that the graph holds for every length. `static` says whether the length
    is known now; by default, whether it is a Python int (Dynamo presents symbolic sizes as ints, so
    PyTorch says).
    """
    if not (isinstance(length, int) if static is None else static):
        return [(0, length, 0, length, 0, 2 * length)]
    span = relative_span(length, length, max_relative_positions)
    windows = []
    for start in range(0, length, block):
        stop = min(start + block, length)
        if transposed:  # queries i with i - j <= -span for every key j of the block, or >= span - 1
            inner = (max(start - span + 1, 0), min(stop + span - 2, length))
        else:  # keys j with i - j >= span - 1 for every query i of the block, or <= -span
            inner = (max(start - span + 2, 0), min(stop + span - 1, length))
        row_start, row_stop = length - stop + inner[0], length - start + inner[1]
        aligned = row_start + math.ceil((row_stop - row_start) / ROW_ALIGNMENT) * ROW_ALIGNMENT
        windows.append((start, stop, *inner, row_start, aligned if aligned <= 2 * length else row_stop))
    return windows


def fit_config_to_weights(config, names) -> None:
    """Settle what config.json leaves open from the checkpoint's weight names.

    The original DeBERTa checkpoints carry the `lm_predictions.lm_head.*` masked-LM head but no `legacy`
    key (whose default selects the other head): with such weights and `legacy` not given, use their head.
    """
    if not config.is_given("legacy") and any(n.startswith("lm_predictions.") for n in names):
        config.legacy = False


def check_input_shapes(
    input_ids: Sequence[int] | None,
    inputs_embeds: Sequence[int] | None,
    **others: Sequence[int] | None,
) -> tuple[int, int]:
    """Check the shapes of a model's inputs and return (batch, length). Dimensions may be None (unknown
    while tracing); they are then not checked.

    Exactly one of input_ids (B, L) and inputs_embeds (B, L, E); B and L at least 1; every other given
    input (attention_mask, token_type_ids) of shape (B, L); position_ids (B, L) or (1, L); attention_mask
    also (B, L, L), which pairs queries with keys (sequences packed into one row, see `data.pack_sequences`).
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids and inputs_embeds")
    if input_ids is not None and len(input_ids) != 2:
        raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids)}")
    if inputs_embeds is not None and len(inputs_embeds) != 3:
        raise ValueError(f"inputs_embeds must be (batch, length, embedding_size), got shape {tuple(inputs_embeds)}")
    name, shape = ("input_ids", input_ids) if input_ids is not None else ("inputs_embeds", inputs_embeds)
    batch, length = shape[0], shape[1]
    if batch == 0 or length == 0:
        raise ValueError(f"empty input: {name} has shape {tuple(shape)}; a batch needs at least one sequence "
                         f"of at least one token")
    for other, other_shape in others.items():
        if other_shape is None:
            continue
        allowed = {"position_ids": [(batch, length), (1, length)], "attention_mask": [(batch, length),
                   (batch, length, length)]}.get(other, [(batch, length)])
        fits = any(len(other_shape) == len(want) and all(a is None or b is None or a == b
                                                         for a, b in zip(other_shape, want)) for want in allowed)
        if not fits:
            expected = " or ".join(str(want) for want in allowed)
            raise ValueError(f"{other} has shape {tuple(other_shape)}, expected {expected} like {name}")
    return batch, length


def check_pair_mask(config, attention_mask: Sequence[int] | None) -> None:
    """Raise ValueError for a (B, L, L) attention_mask where the model scores p2p: its position query is that of
    the query's index in the row, so sequences packed side by side would not get what they get alone."""
    if attention_mask is not None and len(attention_mask) == 3 and config.relative_attention \
            and "p2p" in config.pos_att_type:
        raise ValueError(f"attention_mask of shape {tuple(attention_mask)} pairs queries with keys, which this model "
                         f"(pos_att_type {'|'.join(config.pos_att_type)}) cannot take: its p2p scores depend on where "
                         f"a query sits in its row; pass a (batch, length) mask")
