"""The one table between PyTorch weight names and TensorFlow ones.

PyTorch: `deberta.encoder.layer.0.attention.self.in_proj.weight` (nn.Linear weights are (out, in)).
TensorFlow: `deberta/encoder/layer_._0/attention/self/in_proj/kernel` (Dense kernels are (in, out), the
transposed PyTorch weight), as the established TensorFlow DeBERTa checkpoints name them, without the
model-class prefix (`tf_deberta_model/`) and the `:0` suffix that h5 files add.
"""

from __future__ import annotations

import re

# Weights that keep their layout across frameworks; every other `.weight` is a Linear weight <-> Dense kernel.
_EMBEDDING_TABLES = {
    "word_embeddings": "weight",
    "position_embeddings": "embeddings",
    "token_type_embeddings": "embeddings",
}
_PLAIN_PARAMETERS = ("q_bias", "v_bias", "bias")

# The model-class prefix that Keras-2 era TensorFlow DeBERTa checkpoints put before every weight name.
TF_MODEL_PREFIX = {
    "DebertaModel": "tf_deberta_model",
    "DebertaForMaskedLM": "tf_deberta_for_masked_lm",
    "DebertaForSequenceClassification": "tf_deberta_for_sequence_classification",
    "DebertaForTokenClassification": "tf_deberta_for_token_classification",
    "DebertaForQuestionAnswering": "tf_deberta_for_question_answering",
    "DebertaForMultipleChoice": "tf_deberta_for_multiple_choice",
}

# Keys that carry no weight: buffers older checkpoints saved, and aliases of weights saved under another name.
IGNORED_PT_KEYS = re.compile(r"(^|\.)position_ids$|^cls\.predictions\.decoder\.bias$")

# The legacy MLM decoder is tied to the word embeddings: saved once, under the embeddings' name.
TIED_PT_KEYS = {"cls.predictions.decoder.weight": "deberta.embeddings.word_embeddings.weight"}


class WeightNameError(KeyError):
    """A weight name that neither framework's DeBERTa has."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def pt_to_tf(name: str) -> tuple[str, bool]:
    """PyTorch name -> (TensorFlow name, whether the array is transposed between the two)."""
    if name in TIED_PT_KEYS:
        raise WeightNameError(f"{name} is tied to {TIED_PT_KEYS[name]} and has no TensorFlow weight of its own")
    parts = name.split(".")
    if len(parts) < 2:
        raise WeightNameError(f"not a DeBERTa weight name: {name!r}")
    *path, leaf = parts
    path = "/".join(path)
    path = re.sub(r"(^|/)layer/(\d+)(?=/|$)", r"\1layer_._\2", path)
    module = path.rsplit("/", 1)[-1]
    if module == "rel_embeddings" and leaf == "weight":
        return f"{path}.weight", False  # stored as one variable named "rel_embeddings.weight"
    if module in _EMBEDDING_TABLES and leaf == "weight":
        return f"{path}/{_EMBEDDING_TABLES[module]}", False
    if module == "LayerNorm":
        return f"{path}/{'gamma' if leaf == 'weight' else 'beta'}", False
    if leaf in _PLAIN_PARAMETERS:
        return f"{path}/{leaf}", False
    if leaf == "weight":
        return f"{path}/kernel", True
    raise WeightNameError(f"not a DeBERTa weight name: {name!r}")


def tf_to_pt(name: str) -> tuple[str, bool]:
    """TensorFlow name (with or without the model prefix and ':0') -> (PyTorch name, transposed)."""
    name = name[:-2] if name.endswith(":0") else name
    if name.split("/", 1)[0] in TF_MODEL_PREFIX.values():
        name = name.split("/", 1)[1]
    if name.endswith("rel_embeddings.weight"):
        return name.replace("/", "."), False
    *path, leaf = name.split("/")
    if not path:
        raise WeightNameError(f"not a TensorFlow DeBERTa weight name: {name!r}")
    module = path[-1]
    pt_path = re.sub(r"(^|\.)layer_\._(\d+)(?=\.|$)", r"\1layer.\2", ".".join(path))
    if module in _EMBEDDING_TABLES and leaf == _EMBEDDING_TABLES[module]:
        return f"{pt_path}.weight", False
    if leaf in ("gamma", "beta") and module == "LayerNorm":
        return f"{pt_path}.{'weight' if leaf == 'gamma' else 'bias'}", False
    if leaf == "kernel":
        return f"{pt_path}.weight", True
    if leaf in _PLAIN_PARAMETERS:
        return f"{pt_path}.{leaf}", False
    raise WeightNameError(f"not a TensorFlow DeBERTa weight name: {name!r}")


def add_or_strip_base_prefix(
    names: list[str], model_names: set[str], prefix: str = "deberta."
) -> dict[str, str]:
    """Map checkpoint names onto a model's names when one side is the bare model and the other a head model.

    Returns {checkpoint name: model name}; names that fit neither way are mapped to themselves.
    """
    model_has_prefix = any(n.startswith(prefix) for n in model_names)
    ckpt_has_prefix = any(n.startswith(prefix) for n in names)
    mapping = {}
    for name in names:
        if model_has_prefix and not ckpt_has_prefix:
            mapping[name] = prefix + name
        elif ckpt_has_prefix and not model_has_prefix and name.startswith(prefix):
            mapping[name] = name[len(prefix):]
        else:
            mapping[name] = name
    return mapping
