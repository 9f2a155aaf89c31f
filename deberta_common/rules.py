"""Framework-free rules both backends follow, written once: loss selection, span sizes, id checks."""

from __future__ import annotations

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


def fit_config_to_weights(config, names) -> None:
    """Settle what config.json leaves open from the checkpoint's weight names.

    The original DeBERTa checkpoints carry the `lm_predictions.lm_head.*` masked-LM head but no `legacy`
    key (whose default selects the other head): with such weights and `legacy` not given, use their head.
    """
    if not config.is_given("legacy") and any(n.startswith("lm_predictions.") for n in names):
        config.legacy = False
