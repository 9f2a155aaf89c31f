"""Task data pieces both frameworks share, on numpy: masking for MLM, label alignment, QA windows and spans.

Everything here takes and returns plain lists / numpy arrays; the example scripts turn them into torch or
TensorFlow tensors.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .rules import IGNORE_INDEX

WORD_START = "\u0120"  # byte-level BPE marks a token that begins with a space with this character


# ----------------------------------------------------------------------------- masked-language modelling
def word_ids_from_tokens(tokens: Sequence[str], special: Sequence[int]) -> list[Optional[int]]:
    """Word index of every token of a byte-level BPE sequence (None for special tokens).

    A word starts at a token that begins with a space marker, and at the first token after a special one.
    """
    word_ids, word, previous_special = [], -1, True
    for token, is_special in zip(tokens, special):
        if is_special:
            word_ids.append(None)
            previous_special = True
            continue
        if previous_special or token.startswith(WORD_START):
            word += 1
        word_ids.append(word)
        previous_special = False
    return word_ids


def mask_tokens(
    input_ids: np.ndarray,
    special_tokens_mask: np.ndarray,
    mask_token_id: int,
    vocab_size: int,
    rng: np.random.Generator,
    probability: float = 0.15,
    word_ids: Optional[Sequence[Sequence[Optional[int]]]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic masking (B, L) -> (masked input_ids, labels with -100 where nothing is predicted).

    A `probability` share of the non-special tokens is chosen (of whole words when `word_ids` is given:
    every piece of a chosen word); of those, 80% become [MASK], 10% a random token, 10% stay.
    """
    input_ids = np.array(input_ids, dtype=np.int64)
    special = np.asarray(special_tokens_mask).astype(bool)
    if word_ids is None:
        chosen = (rng.random(input_ids.shape) < probability) & ~special
    else:
        chosen = np.zeros(input_ids.shape, dtype=bool)
        for row, words in enumerate(word_ids):
            n_words = max((w for w in words if w is not None), default=-1) + 1
            picked = rng.random(n_words) < probability
            chosen[row] = [w is not None and picked[w] for w in words]
        chosen &= ~special
    labels = np.where(chosen, input_ids, IGNORE_INDEX)
    draw = rng.random(input_ids.shape)
    to_mask = chosen & (draw < 0.8)
    to_random = chosen & (draw >= 0.8) & (draw < 0.9)
    input_ids[to_mask] = mask_token_id
    input_ids[to_random] = rng.integers(0, vocab_size, size=int(to_random.sum()))
    return input_ids, labels


def pad_batch(sequences: Sequence[Sequence[int]], pad_value: int, length: Optional[int] = None) -> np.ndarray:
    """Right-pad int sequences to `length` (default: the longest) -> (B, length) int64."""
    length = max(len(s) for s in sequences) if length is None else length
    out = np.full((len(sequences), length), pad_value, dtype=np.int64)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq[:length]
    return out


def pack_sequences(
    input_ids: Sequence[Sequence[int]], length: int, pad_token_id: int, **others: Sequence[Sequence[int]]
) -> tuple[dict[str, np.ndarray], list[tuple[int, int, int]]]:
    """Pack sequences of at most `length` tokens into as few rows of `length` as first-fit decreasing finds,
    so that a batch of mixed lengths runs with little padding; the models keep the sequences apart.

    Returns the inputs: input_ids (R, length) int64, attention_mask (R, length, length) int8, 1 where query
    and key belong to one sequence (0 on padding), position_ids (R, length) counting from 0 in each sequence
    (what a model with absolute positions needs; relative positions depend only on i - j), and each per-token
    field of `others` (token_type_ids, labels, ...) packed alike, padded with 0 (labels with -100); and where
    each sequence went, (row, start, stop), in the order given (`unpack_sequences`).
    """
    for name, values in others.items():
        if len(values) != len(input_ids):
            raise ValueError(f"{name} has {len(values)} sequences, input_ids {len(input_ids)}")
        for index, (row, ids) in enumerate(zip(values, input_ids)):
            if len(row) != len(ids):
                raise ValueError(f"{name}[{index}] has {len(row)} values, input_ids[{index}] {len(ids)}")
    for index, ids in enumerate(input_ids):
        if not 0 < len(ids) <= length:
            raise ValueError(f"input_ids[{index}] has {len(ids)} tokens; each sequence needs 1 to {length}")
    free: list[int] = []  # tokens used per row
    places: list[tuple[int, int, int]] = [(0, 0, 0)] * len(input_ids)
    for index in sorted(range(len(input_ids)), key=lambda i: -len(input_ids[i])):
        size = len(input_ids[index])
        row = next((r for r, used in enumerate(free) if used + size <= length), len(free))
        if row == len(free):
            free.append(0)
        places[index] = (row, free[row], free[row] + size)
        free[row] += size
    rows = len(free)
    pads = {name: IGNORE_INDEX if name == "labels" else 0 for name in others}
    packed = {"input_ids": np.full((rows, length), pad_token_id, dtype=np.int64),
              "attention_mask": np.zeros((rows, length, length), dtype=np.int8),
              "position_ids": np.zeros((rows, length), dtype=np.int64),
              **{name: np.full((rows, length), pad, dtype=np.int64) for name, pad in pads.items()}}
    for index, (row, start, stop) in enumerate(places):
        packed["input_ids"][row, start:stop] = input_ids[index]
        packed["attention_mask"][row, start:stop, start:stop] = 1
        packed["position_ids"][row, start:stop] = np.arange(stop - start)
        for name, values in others.items():
            packed[name][row, start:stop] = values[index]
    return packed, places


def unpack_sequences(values: np.ndarray, places: Sequence[tuple[int, int, int]]) -> list[np.ndarray]:
    """Per-token outputs of packed rows, (R, length, ...), -> one (n, ...) array per sequence, in the order
    `pack_sequences` was given them."""
    return [values[row, start:stop] for row, start, stop in places]


class MaskedLMCollator:
    """Pads tokenized examples and masks them anew each call (dynamic masking), whole words optionally."""

    def __init__(self, tokenizer: Any, probability: float = 0.15, whole_word: bool = False, seed: int = 0) -> None:
        self.tokenizer = tokenizer
        self.probability = probability
        self.whole_word = whole_word
        self.rng = np.random.default_rng(seed)

    def __call__(self, examples: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        tok = self.tokenizer
        ids = pad_batch(examples, tok.pad_token_id)
        attention = pad_batch([[1] * len(e) for e in examples], 0)
        special = pad_batch([tok.get_special_tokens_mask(list(e), already_has_special_tokens=True) for e in examples], 1)
        word_ids = None
        if self.whole_word:
            word_ids = [word_ids_from_tokens(tok.convert_ids_to_tokens(row.tolist()), sp) for row, sp in zip(ids, special)]
        masked, labels = mask_tokens(ids, special, tok.mask_token_id, len(tok), self.rng, self.probability, word_ids)
        return {"input_ids": masked, "attention_mask": attention, "labels": labels}


# ----------------------------------------------------------------------------- token classification
def align_labels(word_ids: Sequence[Optional[int]], word_labels: Sequence[int], label_all_pieces: bool = False) -> list[int]:
    """Word-level labels -> one label per token: the first piece of a word carries the word's label,
    continuation pieces -100 (or the same label with `label_all_pieces`), special tokens -100."""
    labels, previous = [], None
    for word in word_ids:
        if word is None:
            labels.append(IGNORE_INDEX)
        elif word != previous or label_all_pieces:
            labels.append(int(word_labels[word]))
        else:
            labels.append(IGNORE_INDEX)
        previous = word
    return labels


# ----------------------------------------------------------------------------- question answering
def prepare_qa_features(
    tokenizer: Any,
    question: str,
    context: str,
    max_length: int = 384,
    stride: int = 128,
    answer_start: Optional[int] = None,
    answer_text: Optional[str] = None,
) -> list[dict[str, Any]]:
    """`[CLS] question [SEP] context window [SEP]` features over a long context, windows overlapping by
    `stride` tokens. Each has `offset_mapping` (character span in `context` per token, None outside the
    context) and, when an answer is given, `start_positions`/`end_positions` (0, the [CLS], when the answer
    is not wholly inside the window). Needs a tokenizer that returns offsets (DebertaTokenizerFast)."""
    question_ids = tokenizer(question, add_special_tokens=False)["input_ids"]
    encoded = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    context_ids, offsets = encoded["input_ids"], [tuple(o) for o in encoded["offset_mapping"]]
    room = max_length - len(question_ids) - 3
    if room <= 0:
        raise ValueError(f"the question takes {len(question_ids)} tokens, leaving no room in max_length={max_length}")
    if stride >= room:
        raise ValueError(f"stride ({stride}) must be smaller than the context room per window ({room})")
    answer = None
    if answer_start is not None and answer_text is not None:
        answer = (answer_start, answer_start + len(answer_text))
    features, start = [], 0
    while True:
        end = min(start + room, len(context_ids))
        window = context_ids[start:end]
        head = [tokenizer.cls_token_id] + question_ids + [tokenizer.sep_token_id]
        input_ids = head + window + [tokenizer.sep_token_id]
        feature = {
            "input_ids": input_ids,
            "token_type_ids": [0] * len(head) + [1] * (len(window) + 1),
            "attention_mask": [1] * len(input_ids),
            "offset_mapping": [None] * len(head) + offsets[start:end] + [None],
        }
        if answer is not None:
            feature["start_positions"], feature["end_positions"] = _answer_tokens(
                offsets[start:end], answer, len(head))
        features.append(feature)
        if end == len(context_ids):
            return features
        start += room - stride


def _answer_tokens(window_offsets: list[tuple[int, int]], answer: tuple[int, int], shift: int) -> tuple[int, int]:
    first = [i for i, (s, e) in enumerate(window_offsets) if s <= answer[0] < e or (s >= answer[0] and e <= answer[1])]
    last = [i for i, (s, e) in enumerate(window_offsets) if s < answer[1] <= e or (s >= answer[0] and e <= answer[1])]
    inside = window_offsets and window_offsets[0][0] <= answer[0] and answer[1] <= window_offsets[-1][1]
    if not (first and last and inside):
        return 0, 0
    return first[0] + shift, last[-1] + shift


def best_answer(
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    features: Sequence[dict[str, Any]],
    context: str,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, Any]:
    """The highest-scoring span (start + end logit) over every window of one example, mapped back to the
    context through the offsets: {"text", "score", "start", "end"} (character positions); "" when no valid
    span exists."""
    best = {"text": "", "score": float("-inf"), "start": 0, "end": 0}
    for starts, ends, feature in zip(start_logits, end_logits, features):
        offsets = feature["offset_mapping"]
        starts, ends = np.asarray(starts)[: len(offsets)], np.asarray(ends)[: len(offsets)]
        for s in np.argsort(starts)[::-1][:n_best]:
            for e in np.argsort(ends)[::-1][:n_best]:
                if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(starts[s] + ends[e])
                if score > best["score"]:
                    begin, finish = offsets[s][0], offsets[e][1]
                    best = {"text": context[begin:finish], "score": score, "start": begin, "end": finish}
    return best
