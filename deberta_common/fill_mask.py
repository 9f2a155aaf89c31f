"""Fill-mask for DeBERTa masked-LM models of either backend: the top-k tokens for each [MASK] in a text.

    from deberta_common import DebertaTokenizerFast
    from deberta_common.fill_mask import fill_mask
    from deberta_common.hub import resolve_checkpoint
    from deberta_pt import DebertaForMaskedLM

    model = DebertaForMaskedLM.from_pretrained("deberta-zoo/tiny-mlm")
    tokenizer = DebertaTokenizerFast.from_pretrained(resolve_checkpoint("deberta-zoo/tiny-mlm"))
    fill_mask(model, tokenizer, "It is [MASK] to use.")  # [[{"token_str": ..., "score": ...}, ...]]

The model may be a `torch.nn.Module` (`deberta_pt`), a Keras model (`deberta_tf`), or any callable that takes a
dict of numpy arrays (e.g. a `tf.function(jit_compile=True)` around a Keras model) and returns the logits or an
output with `.logits` / `["logits"]`. Only the framework the model belongs to is used; the other one is never
imported here.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

Prediction = dict[str, Any]  # {"token_str": str, "token": int, "score": float, "sequence": str}


def model_logits(model: Any, batch: dict[str, np.ndarray]) -> np.ndarray:
    """Run `model` on `batch` (input_ids, attention_mask as numpy) in inference mode; logits (B, L, V) as float32."""
    torch = sys.modules.get("torch")  # a torch model means torch is already imported
    if torch is not None and isinstance(model, torch.nn.Module):
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model(**{k: torch.from_numpy(np.asarray(v)).to(device) for k, v in batch.items()})
        finally:
            model.train(was_training)
        return _logits_of(out).detach().float().cpu().numpy()
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        out = model(batch, training=False)
    elif callable(model):
        out = model(batch)
    else:
        raise TypeError(f"fill_mask needs a torch.nn.Module, a Keras model or a callable, got {type(model).__name__}")
    return np.asarray(_logits_of(out), dtype=np.float32)


def _logits_of(out: Any) -> Any:
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, dict):
        return out["logits"]
    return out


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)  # float64: scores of near-tied tokens keep their order
    x = np.exp(x - x.max(axis=-1, keepdims=True))
    return x / x.sum(axis=-1, keepdims=True)


def mask_positions(tokenizer: Any, input_ids: np.ndarray) -> list[int]:
    """Positions of the mask token in one row of ids; ValueError when there is none."""
    positions = [int(i) for i in np.flatnonzero(np.asarray(input_ids) == tokenizer.mask_token_id)]
    if not positions:
        raise ValueError(
            f"the text has no {tokenizer.mask_token}: write {tokenizer.mask_token} where a word should be predicted, "
            f"e.g. \"The server returned an {tokenizer.mask_token}.\""
        )
    return positions


def predictions_from_logits(
    tokenizer: Any, input_ids: np.ndarray, logits: np.ndarray, top_k: int = 5, attention_mask: np.ndarray | None = None
) -> list[list[Prediction]]:
    """Top-k predictions for each mask token in one row: `input_ids` (L,), `logits` (L, V).

    "sequence" is the text with that one mask filled in (any other masks stay), without [CLS]/[SEP]/padding.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    input_ids = np.asarray(input_ids)
    length = int(np.sum(attention_mask)) if attention_mask is not None else len(input_ids)
    ids = input_ids[:length]
    # The text between [CLS] and [SEP]; special tokens typed by the user (other masks) stay in it.
    start = 1 if ids[0] == tokenizer.cls_token_id else 0
    body = slice(start, length - 1 if ids[-1] == tokenizer.sep_token_id else length)
    results = []
    for position in mask_positions(tokenizer, ids):
        probs = _softmax(np.asarray(logits[position]))
        k = min(top_k, probs.shape[-1])
        best = np.argsort(-probs, kind="stable")[:k]
        row = []
        for token in best:
            filled = ids.copy()
            filled[position] = token
            row.append({
                "token_str": tokenizer.decode([int(token)]).strip(),
                "token": int(token),
                "score": float(probs[token]),
                "sequence": _decode_keeping_masks(tokenizer, filled[body].tolist()),
            })
        results.append(row)
    return results


def _decode_keeping_masks(tokenizer: Any, ids: list[int]) -> str:
    """Decode ids, writing each remaining mask token as " [MASK]" (it took the space before it when encoded)."""
    pieces, current = [], []
    for token in ids:
        if token == tokenizer.mask_token_id:
            pieces.append(tokenizer.decode(current))
            current = []
        else:
            current.append(token)
    pieces.append(tokenizer.decode(current))
    return f" {tokenizer.mask_token}".join(pieces).strip()


def fill_mask(model: Any, tokenizer: Any, text: str, top_k: int = 5) -> list[list[Prediction]]:
    """For each [MASK] in `text`, the `top_k` most likely tokens, best first, as
    {"token_str", "token", "score" (softmax probability), "sequence" (the text with that mask filled in)}.

    `model`: a DeBERTa masked-LM of either backend (see the module docstring); `tokenizer`: DebertaTokenizer or
    DebertaTokenizerFast. Raises ValueError when the text has no mask token.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__} (call fill_mask once per text)")
    encoding = tokenizer(text, return_tensors="np", return_token_type_ids=False)
    input_ids = np.asarray(encoding["input_ids"])
    mask_positions(tokenizer, input_ids[0])  # fail before running the model
    logits = model_logits(model, {"input_ids": input_ids, "attention_mask": np.asarray(encoding["attention_mask"])})
    return predictions_from_logits(tokenizer, input_ids[0], logits[0], top_k)
