"""Model output containers shared by both backends: attribute access, dict access and tuple order."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class ModelOutput(OrderedDict):
    """An ordered mapping of the non-None output fields, readable as attributes or, with `to_tuple()`, as a tuple.

    Subclasses list their fields in `_fields`; the tuple order is that order with None entries left out,
    as DeBERTa users know it from `return_dict=False`.
    """

    _fields: tuple[str, ...] = ()

    def __init__(self, *pairs: Any, **kwargs: Any) -> None:
        # tf.function rebuilds a returned mapping as `type(out)(pairs)`: accept that form too.
        kwargs = dict(*pairs, **kwargs)
        unknown = set(kwargs) - set(self._fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no fields {sorted(unknown)}")
        super().__init__((k, kwargs[k]) for k in self._fields if kwargs.get(k) is not None)

    def __getattr__(self, name: str) -> Any:
        if name in type(self)._fields:
            return self.get(name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, slice)):
            return self.to_tuple()[key]
        return super().__getitem__(key)

    def to_tuple(self) -> tuple:
        return tuple(self.values())

    def __reduce__(self):  # keep pickling (and torch.distributed) working despite the custom __init__
        return (_rebuild_output, (type(self), dict(self)))


def _rebuild_output(cls: type, data: dict) -> ModelOutput:
    return cls(**data)


class BaseModelOutput(ModelOutput):
    """last_hidden_state: (B, L, hidden); hidden_states: embeddings + one per layer; attentions: (B, H, L, L) each."""

    _fields = ("last_hidden_state", "hidden_states", "attentions")


class MaskedLMOutput(ModelOutput):
    """logits: (B, L, vocab_size)."""

    _fields = ("loss", "logits", "hidden_states", "attentions")


class SequenceClassifierOutput(ModelOutput):
    """logits: (B, num_labels)."""

    _fields = ("loss", "logits", "hidden_states", "attentions")


class TokenClassifierOutput(ModelOutput):
    """logits: (B, L, num_labels)."""

    _fields = ("loss", "logits", "hidden_states", "attentions")


class QuestionAnsweringModelOutput(ModelOutput):
    """start_logits, end_logits: (B, L)."""

    _fields = ("loss", "start_logits", "end_logits", "hidden_states", "attentions")


class MultipleChoiceModelOutput(ModelOutput):
    """logits: (B, num_choices), one score per choice."""

    _fields = ("loss", "logits", "hidden_states", "attentions")
