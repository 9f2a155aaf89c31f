"""Task metrics written here once for both frameworks: accuracy, F1, exact match, and entity-level F1."""

from __future__ import annotations

import collections
import re
import string
from typing import Iterable, Sequence

import numpy as np


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Share of equal entries; labels of -100 are left out (token-level use)."""
    predictions, labels = np.asarray(predictions).ravel(), np.asarray(labels).ravel()
    keep = labels != -100
    return float((predictions[keep] == labels[keep]).mean()) if keep.any() else 0.0


def f1(predictions: Sequence[int], labels: Sequence[int], average: str = "macro") -> float:
    """F1 over classes: "macro" (mean of per-class F1 over the classes present) or "micro"."""
    predictions, labels = np.asarray(predictions).ravel(), np.asarray(labels).ravel()
    keep = labels != -100
    predictions, labels = predictions[keep], labels[keep]
    classes = np.union1d(predictions, labels)
    tp = np.array([np.sum((predictions == c) & (labels == c)) for c in classes], dtype=float)
    fp = np.array([np.sum((predictions == c) & (labels != c)) for c in classes], dtype=float)
    fn = np.array([np.sum((predictions != c) & (labels == c)) for c in classes], dtype=float)
    if average == "micro":
        return _f1(tp.sum(), fp.sum(), fn.sum())
    if average != "macro":
        raise ValueError(f"average must be 'macro' or 'micro', got {average!r}")
    return float(np.mean([_f1(*x) for x in zip(tp, fp, fn)])) if len(classes) else 0.0


def multi_label_f1(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    """Micro F1 of (B, num_labels) predictions thresholded against 0/1 labels."""
    predicted = np.asarray(probabilities) >= threshold
    labels = np.asarray(labels) >= 0.5
    return _f1(float((predicted & labels).sum()), float((predicted & ~labels).sum()), float((~predicted & labels).sum()))


def _f1(tp: float, fp: float, fn: float) -> float:
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


# ----------------------------------------------------------------------------- question answering
def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse spaces (the SQuAD convention)."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truths: Iterable[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(t) for t in truths))


def span_f1(prediction: str, truths: Iterable[str]) -> float:
    """Best token-overlap F1 of the prediction against any of the true answers."""
    best = 0.0
    predicted = normalize_answer(prediction).split()
    for truth in truths:
        expected = normalize_answer(truth).split()
        if not predicted or not expected:
            best = max(best, float(predicted == expected))
            continue
        common = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
        if common:
            precision, recall = common / len(predicted), common / len(expected)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


# ----------------------------------------------------------------------------- entities (seqeval style)
def entity_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """(type, start, end) spans of a BIO / IOB2 tag sequence; an I- tag after O or another type starts a span."""
    spans, kind, start = set(), None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and name == kind
        if kind is not None and not continues:
            spans.add((kind, start, i))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, start = name, i
    return spans


def entity_f1(predictions: Sequence[Sequence[str]], labels: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 over exactly matching entity spans, per sentence."""
    tp = n_pred = n_true = 0
    for predicted, expected in zip(predictions, labels):
        p, t = entity_spans(predicted), entity_spans(expected)
        tp, n_pred, n_true = tp + len(p & t), n_pred + len(p), n_true + len(t)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f}
