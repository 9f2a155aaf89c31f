"""The tiny configs every test speaks of by name, and helpers to build inputs for them."""

from __future__ import annotations

import numpy as np

from deberta_common import DebertaConfig

BASE = dict(
    vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
    max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)

VARIANTS = {
    "absolute": dict(),
    "relative": dict(relative_attention=True, position_biased_input=False, pos_att_type="c2p|p2c"),
    "both_positions": dict(relative_attention=True, position_biased_input=True, pos_att_type=["c2p", "p2c"]),
    "short_span": dict(relative_attention=True, position_biased_input=False, pos_att_type="c2p|p2c",
                       max_relative_positions=4),
    "c2p": dict(relative_attention=True, pos_att_type="c2p"),
    "p2c": dict(relative_attention=True, pos_att_type="p2c"),
    "none": dict(relative_attention=True, pos_att_type="None"),
    "token_types": dict(type_vocab_size=2),
    "embedding_projection": dict(embedding_size=24),
    "talking_head": dict(relative_attention=True, pos_att_type="c2p|p2c", talking_head=True),
    "non_legacy_mlm": dict(relative_attention=True, pos_att_type="c2p|p2c", legacy=False),
    "relu": dict(hidden_act="relu", relative_attention=True, pos_att_type="c2p|p2c"),
    "tanh": dict(hidden_act="tanh", pooler_hidden_act="tanh"),
    # The original DeBERTa's masked-LM head without absolute positions in the input: the Enhanced Mask Decoder.
    "emd": dict(relative_attention=True, position_biased_input=False, pos_att_type="c2p|p2c", legacy=False),
    "p2p": dict(relative_attention=True, pos_att_type="c2p|p2c|p2p"),
}

HEADS = (
    "Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
)


def make_config(variant: str = "relative", **overrides) -> DebertaConfig:
    return DebertaConfig(**{**BASE, **VARIANTS[variant], **overrides})


def make_batch(config: DebertaConfig, batch: int = 3, length: int = 11, seed: int = 0) -> dict[str, np.ndarray]:
    """int64 numpy inputs with padding of different lengths (row 0 full, row 1 to 7, row 2 to 3 tokens)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, config.vocab_size, size=(batch, length), dtype=np.int64)
    mask = np.ones((batch, length), dtype=np.int64)
    for row, keep in zip(range(1, batch), (7, 3, 5, 9)):
        mask[row, keep:] = 0
    ids = np.where(mask == 1, ids, config.pad_token_id)
    out = {"input_ids": ids, "attention_mask": mask}
    if config.type_vocab_size > 0:
        out["token_type_ids"] = rng.integers(0, config.type_vocab_size, size=(batch, length), dtype=np.int64)
    return out


def make_labels(head: str, config: DebertaConfig, batch: np.ndarray | dict, seed: int = 1) -> dict[str, np.ndarray]:
    """Labels for `head` matching the batch: -100 at padded positions for token-level heads."""
    rng = np.random.default_rng(seed)
    mask = batch["attention_mask"]
    if head == "ForMultipleChoice":  # inputs (B, C, L): the index of the right choice
        return {"labels": rng.integers(0, mask.shape[1], size=(mask.shape[0],)).astype(np.int64)}
    b, length = mask.shape
    if head == "ForMaskedLM":
        labels = rng.integers(0, config.vocab_size, size=(b, length))
        return {"labels": np.where(mask == 1, labels, -100).astype(np.int64)}
    if head == "ForTokenClassification":
        labels = rng.integers(0, config.num_labels, size=(b, length))
        return {"labels": np.where(mask == 1, labels, -100).astype(np.int64)}
    if head == "ForSequenceClassification":
        return {"labels": rng.integers(0, config.num_labels, size=(b,)).astype(np.int64)}
    if head == "ForQuestionAnswering":
        return {"start_positions": rng.integers(0, 3, size=(b,)).astype(np.int64),
                "end_positions": rng.integers(2, 5, size=(b,)).astype(np.int64)}
    return {}


def build_pt(head: str, config: DebertaConfig, std: float = 0.2, seed: int = 0):
    """A PyTorch `Deberta{head}` in eval mode with N(0, std) weights, wider than the init so that mistakes show in the
    outputs, and LayerNorm scales 1 + N(0, std): scales near 0 would shrink the attention scores until the softmax
    is near uniform, and a wrong relative score would change the outputs by less than the tests' tolerance."""
    import torch

    import deberta_pt

    torch.manual_seed(seed)
    model = getattr(deberta_pt, "Deberta" + head)(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.normal_(0, std)
            if name.endswith("LayerNorm.weight"):
                parameter.add_(1)
    return model
