"""DeBERTa (v1) as torch.nn modules."""

from .modeling import (
    DebertaForMaskedLM,
    DebertaForMultipleChoice,
    DebertaForQuestionAnswering,
    DebertaForSequenceClassification,
    DebertaForTokenClassification,
    DebertaModel,
)
from .pretrained import DebertaPreTrainedModel

__all__ = [
    "DebertaModel",
    "DebertaPreTrainedModel",
    "DebertaForMaskedLM",
    "DebertaForSequenceClassification",
    "DebertaForTokenClassification",
    "DebertaForQuestionAnswering",
    "DebertaForMultipleChoice",
]
