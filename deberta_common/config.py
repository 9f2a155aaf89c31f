"""`DebertaConfig`: the `config.json` that DeBERTa checkpoints ship, read, validated and written back."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

CONFIG_NAME = "config.json"

# Activation names both backends implement (see `deberta_pt.modeling.ACT2FN` / `deberta_tf.modeling.ACT2FN`).
ACTIVATIONS = ("gelu", "gelu_new", "gelu_fast", "gelu_python", "relu", "tanh", "sigmoid", "silu", "swish", "linear")

# c2p/p2c/p2p are relative-attention terms; "none" adds no term but, as in the original checkpoints,
# still counts in the attention scale factor.
POS_ATT_TYPES = ("c2p", "p2c", "p2p", "none")


class ConfigError(ValueError):
    """A config.json value that DeBERTa cannot use. The message names the field and the value."""


def parse_pos_att_type(value: Any) -> list[str]:
    """Normalise `pos_att_type` the way existing checkpoints expect.

    A string is split on "|" and lower-cased ("c2p|p2c" -> ["c2p", "p2c"], "None" -> ["none"]);
    JSON null means []. Every entry counts in the scale factor 1 + len(pos_att_type).
    """
    if value is None:
        return []
    if isinstance(value, str):
        entries = [x.strip().lower() for x in value.split("|") if x.strip()]
    elif isinstance(value, (list, tuple)):
        if not all(isinstance(x, str) for x in value):
            raise ConfigError(f"pos_att_type: every entry must be a string, got {value!r}")
        entries = [x.strip().lower() for x in value]
    else:
        raise ConfigError(f"pos_att_type: expected a string, a list of strings or null, got {value!r}")
    unknown = [x for x in entries if x not in POS_ATT_TYPES]
    if unknown:
        raise ConfigError(f"pos_att_type: unknown entries {unknown} (known: {list(POS_ATT_TYPES)})")
    return entries


class DebertaConfig:
    """Hyper-parameters of a DeBERTa (v1) model, with the reference defaults (deberta-base shapes).

    Unknown keys found in a config.json are kept as attributes and written back unchanged.
    """

    model_type = "deberta"

    def __init__(
        self,
        vocab_size: int = 50265,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 0,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-7,
        relative_attention: bool = False,
        max_relative_positions: int = -1,
        pad_token_id: int = 0,
        position_biased_input: bool = True,
        pos_att_type: Any = None,
        pooler_dropout: float = 0,
        pooler_hidden_act: str = "gelu",
        pooler_hidden_size: int | None = None,
        legacy: bool = True,
        embedding_size: int | None = None,
        talking_head: bool = False,
        cls_dropout: float | None = None,
        num_labels: int | None = None,
        id2label: dict | None = None,
        label2id: dict | None = None,
        problem_type: str | None = None,
        architectures: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.relative_attention = relative_attention
        self.max_relative_positions = max_relative_positions
        self.pad_token_id = pad_token_id
        self.position_biased_input = position_biased_input
        self.pos_att_type = parse_pos_att_type(pos_att_type)
        self.pooler_dropout = pooler_dropout
        self.pooler_hidden_act = pooler_hidden_act
        self.pooler_hidden_size = hidden_size if pooler_hidden_size is None else pooler_hidden_size
        self.legacy = legacy
        self.embedding_size = hidden_size if embedding_size is None else embedding_size
        self.talking_head = talking_head
        self.cls_dropout = cls_dropout
        self.problem_type = problem_type
        self.architectures = architectures
        self._set_labels(num_labels, id2label, label2id)
        self.model_type = kwargs.pop("model_type", "deberta")
        # Unknown keys (tool-specific fields such as torch_dtype or transformers_version) are kept.
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.validate()

    def _set_labels(self, num_labels: int | None, id2label: dict | None, label2id: dict | None) -> None:
        if id2label is not None:
            id2label = {int(k): v for k, v in id2label.items()}
            if num_labels is not None and num_labels != len(id2label):
                raise ConfigError(f"num_labels={num_labels} disagrees with id2label, which has {len(id2label)} entries")
        elif num_labels is not None:
            id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        else:
            id2label = {0: "LABEL_0", 1: "LABEL_1"}
        self.id2label = id2label
        self.label2id = {v: k for k, v in id2label.items()} if label2id is None else dict(label2id)

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        self._set_labels(value, None, None)

    @property
    def attention_span(self) -> int:
        """R: the relative distance at which positions are clipped (max_position_embeddings when < 1)."""
        return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings

    @property
    def enhanced_mask_decoder(self) -> bool:
        """The original masked-LM head (legacy=False) of a model without absolute positions in its input
        predicts through the Enhanced Mask Decoder, as the original DeBERTa does."""
        return not self.legacy and not self.position_biased_input

    @property
    def absolute_position_table(self) -> bool:
        """Whether the embeddings hold `position_embeddings`: for the input, or for the Enhanced Mask Decoder."""
        return self.position_biased_input or self.enhanced_mask_decoder

    @property
    def scale_factor(self) -> int:
        """The attention scores are divided by sqrt(head_dim * scale_factor)."""
        return 1 + len(self.pos_att_type)

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise `ConfigError` naming the field and value of the first inconsistent setting."""
        ints = {
            "vocab_size": 1, "hidden_size": 1, "num_hidden_layers": 0, "num_attention_heads": 1,
            "intermediate_size": 1, "max_position_embeddings": 1, "type_vocab_size": 0,
            "embedding_size": 1, "pooler_hidden_size": 1,
        }
        for name, minimum in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name}: expected an integer, got {value!r}")
            if value < minimum:
                raise ConfigError(f"{name}: must be >= {minimum}, got {value}")
        if isinstance(self.max_relative_positions, bool) or not isinstance(self.max_relative_positions, int):
            raise ConfigError(f"max_relative_positions: expected an integer, got {self.max_relative_positions!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) is not divisible by num_attention_heads ({self.num_attention_heads})"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "pooler_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"{name}: expected a probability in [0, 1), got {value!r}")
        if self.cls_dropout is not None and (not isinstance(self.cls_dropout, (int, float)) or not 0 <= self.cls_dropout < 1):
            raise ConfigError(f"cls_dropout: expected a probability in [0, 1) or null, got {self.cls_dropout!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{name}: expected a positive number, got {value!r}")
        for name in ("hidden_act", "pooler_hidden_act"):
            value = getattr(self, name)
            if value not in ACTIVATIONS:
                raise ConfigError(f"{name}: unknown activation {value!r} (known: {list(ACTIVATIONS)})")
        for name in ("relative_attention", "position_biased_input", "legacy", "talking_head"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if self.problem_type not in (None, "regression", "single_label_classification", "multi_label_classification"):
            raise ConfigError(f"problem_type: unknown value {self.problem_type!r}")
        if not isinstance(self.pad_token_id, int) or not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"pad_token_id: must be an id in [0, vocab_size={self.vocab_size}), got {self.pad_token_id!r}")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if not k.startswith("_")}
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["label2id"] = dict(self.label2id)
        out["model_type"] = self.model_type
        # Other tools read pos_att_type as a list or null; [] round-trips as null.
        out["pos_att_type"] = list(self.pos_att_type) if self.pos_att_type else None
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> "DebertaConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
        merged = dict(data)
        if "num_labels" in overrides and "id2label" not in overrides:
            # A new label count replaces the stored label names, as users expect when re-heading a model.
            merged.pop("id2label", None)
            merged.pop("label2id", None)
        merged.update(overrides)
        try:
            config = cls(**merged)
        except TypeError as err:  # e.g. a field given twice through overrides
            raise ConfigError(str(err)) from err
        config._given_keys = frozenset(merged)  # what the file (or caller) set, as opposed to defaults
        return config

    def is_given(self, key: str) -> bool:
        """Whether `key` was set explicitly (in config.json or as an override) rather than left at its default."""
        return key in getattr(self, "_given_keys", ())

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides: Any) -> "DebertaConfig":
        """Read `config.json` from a checkpoint folder, or a JSON file given directly."""
        path = os.fspath(path)
        file = os.path.join(path, CONFIG_NAME) if os.path.isdir(path) else path
        if not os.path.isfile(file):
            raise FileNotFoundError(f"no {CONFIG_NAME} at {file}")
        try:
            with open(file, encoding="utf-8") as fh:
                data = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{file} is not valid JSON: {err}") from err
        try:
            return cls.from_dict(data, **overrides)
        except ConfigError as err:
            raise ConfigError(f"{file}: {err}") from err

    def save_pretrained(self, directory: str | os.PathLike) -> str:
        os.makedirs(directory, exist_ok=True)
        file = os.path.join(directory, CONFIG_NAME)
        with open(file, "w", encoding="utf-8") as fh:
            fh.write(self.to_json_string())
        return file

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DebertaConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"DebertaConfig {self.to_json_string()}"
