"""DeBERTa (v1) as Keras 3 models on TensorFlow, numerically identical to `deberta_pt`.

Importing this package registers every model and layer with Keras (package "deberta_zoo"), so that
`keras.models.load_model("model.keras")` needs no custom_objects.
"""

from .modeling import (
    TFDebertaForMaskedLM,
    TFDebertaForMultipleChoice,
    TFDebertaForQuestionAnswering,
    TFDebertaForSequenceClassification,
    TFDebertaForTokenClassification,
    TFDebertaModel,
)
from .pretrained import TFDebertaPreTrainedModel

__all__ = [
    "TFDebertaModel",
    "TFDebertaPreTrainedModel",
    "TFDebertaForMaskedLM",
    "TFDebertaForSequenceClassification",
    "TFDebertaForTokenClassification",
    "TFDebertaForQuestionAnswering",
    "TFDebertaForMultipleChoice",
]
