"""`TFDebertaPreTrainedModel`: Keras plumbing, and loading/saving checkpoint folders in TensorFlow.

Weights are addressed by their PyTorch names (`deberta.encoder.layer.0.attention.self.in_proj.weight`), read
off the layer attributes, which mirror `deberta_pt`; `deberta_common.weight_names` translates them to the
TensorFlow names of `tf_model.h5` and says which arrays are transposed.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Mapping
from typing import Any, Callable, Iterator, Optional

import keras
import numpy as np
import tensorflow as tf

from deberta_common import checkpoints, rules, weight_names
from deberta_common.checkpoints import CheckpointReader
from deberta_common.config import DebertaConfig
from deberta_common.hub import resolve_checkpoint

logger = logging.getLogger("deberta_tf")

# The arguments of `call` that hold tensors; the others are Python flags.
TENSOR_ARGUMENTS = (
    "input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds",
    "labels", "start_positions", "end_positions",
)

# Variable names of the Keras built-in layers -> the PyTorch parameter names of the matching torch modules.
_KERAS_TO_PT_LEAF = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias", "embeddings": "weight"}


class DebertaKerasMixin:
    """What every DeBERTa layer and model shares: the `DebertaConfig` (serialised as its dict by
    `get_config`) and constructors for Keras sub-layers. Sub-layers take the parent's dtype policy, which
    Keras does not pass down by itself, so that `dtype="mixed_bfloat16"` on a model reaches every layer."""

    def __init__(self, config: DebertaConfig, **kwargs: Any) -> None:
        if not isinstance(config, DebertaConfig):
            raise TypeError(f"expected a DebertaConfig, got {type(config).__name__}")
        super().__init__(**kwargs)
        self.config = config

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        config = dict(config)
        return cls(DebertaConfig.from_dict(config.pop("config")), **config)

    # ------------------------------------------------------------------ sub-layer constructors
    def child(self, name: str) -> dict[str, Any]:
        """Keyword arguments for a DeBERTa sub-layer named `name`."""
        return {"name": name, "dtype": self.dtype_policy}

    def make_dense(self, units: int, name: str, use_bias: bool = True) -> keras.layers.Dense:
        initializer = keras.initializers.RandomNormal(stddev=self.config.initializer_range)
        return keras.layers.Dense(units, use_bias=use_bias, kernel_initializer=initializer, **self.child(name))

    def make_embedding(self, rows: int, columns: int, name: str) -> keras.layers.Embedding:
        initializer = keras.initializers.RandomNormal(stddev=self.config.initializer_range)
        return keras.layers.Embedding(rows, columns, embeddings_initializer=initializer, **self.child(name))

    def make_layer_norm(self, name: str = "LayerNorm") -> keras.layers.LayerNormalization:
        # Keras computes LayerNormalization statistics in float32 whatever the compute dtype.
        return keras.layers.LayerNormalization(epsilon=self.config.layer_norm_eps, **self.child(name))

    def make_dropout(self, rate: float, name: str = "dropout") -> keras.layers.Dropout:
        return keras.layers.Dropout(rate, **self.child(name))


def build_once(layer: keras.layers.Layer, input_shape: Any = None) -> None:
    """Create `layer`'s variables unless it has them (Keras built-in layers would create them twice)."""
    if not layer.built:
        layer.build(input_shape)


def shape_list(tensor: tf.Tensor) -> list:
    """The dimensions of `tensor`: Python ints where the static shape knows them, scalar tensors elsewhere,
    so that graphs traced with unknown lengths stay valid and XLA sees constants."""
    dynamic = tf.shape(tensor)
    return [dynamic[i] if size is None else size for i, size in enumerate(tensor.shape)]


def unpack_inputs(call: Callable) -> Callable:
    """Let `call` take a tokenizer-style dict as its first argument (`model({"input_ids": ..., ...})`) as
    well as keywords; numpy arrays and lists become tensors. A key given twice, or unknown, is an error."""
    names = list(inspect.signature(call).parameters)[1:]

    @functools.wraps(call)
    def wrapper(self, *args, **kwargs):
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}.call takes at most {len(names)} positional arguments")
        arguments = dict(zip(names, args))
        arguments.update(kwargs)
        first = arguments.get(names[0])
        if isinstance(first, Mapping):
            arguments[names[0]] = None
            unknown = sorted(set(first) - set(names))
            if unknown:
                raise ValueError(f"{type(self).__name__} got unknown input keys {unknown} (accepted: {names})")
            for key, value in first.items():
                if arguments.get(key) is not None:
                    raise ValueError(f"{key} was given both in the input dict and as an argument")
                arguments[key] = value
        for key in TENSOR_ARGUMENTS:
            value = arguments.get(key)
            if value is not None and not tf.is_tensor(value):
                arguments[key] = tf.convert_to_tensor(value)
        return call(self, **arguments)

    return wrapper


def pt_named_variables(layer: keras.layers.Layer, prefix: str = "") -> Iterator[tuple[str, keras.Variable]]:
    """(PyTorch weight name, variable) of every weight under `layer`: `encoder.layer.0.attention.self.q_bias`,
    `...in_proj.weight` (the Dense kernel). A sub-layer contributes its Keras name, which is the torch
    attribute name (the attribute itself is too, except `output`, which Keras reserves); a variable or a
    list of layers contributes its attribute name."""
    if not isinstance(layer, DebertaKerasMixin):  # a Keras built-in: Dense, LayerNormalization, Embedding
        for variable in layer.weights:
            yield prefix + _KERAS_TO_PT_LEAF[variable.name], variable
        return
    for attribute, value in vars(layer).items():
        if attribute.startswith("_"):
            continue
        if isinstance(value, keras.Variable):
            yield prefix + attribute, value
        elif isinstance(value, keras.layers.Layer):
            yield from pt_named_variables(value, f"{prefix}{value.name}.")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, keras.layers.Layer):
                    yield from pt_named_variables(item, f"{prefix}{attribute}.{i}.")


def _pt_layout_shape(variable: keras.Variable, pt_name: str) -> tuple[int, ...]:
    shape = tuple(variable.shape)
    return shape[::-1] if weight_names.pt_to_tf(pt_name)[1] else shape


@keras.saving.register_keras_serializable(package="deberta_zoo")
class TFDebertaPreTrainedModel(DebertaKerasMixin, keras.Model):
    """Base of every DeBERTa Keras model: variables built at construction, `from_pretrained`,
    `save_pretrained`, and `fit`/`evaluate`/`predict` on the model's own loss.

    Keras integration: `compile()` without a loss trains on the loss the model computes from the labels in
    the input dict (or from `y`); with a Keras loss, that loss scores `keras_outputs` (the logits) against
    `y`. `predict` returns a dict of the output fields, loss left out.
    """

    base_model_prefix = "deberta"
    # The output fields that a Keras loss or metric sees, and the label arguments of `compute_head_loss`.
    keras_output_names: tuple[str, ...] = ("logits",)
    label_names: tuple[str, ...] = ("labels",)

    def __init__(self, config: DebertaConfig, **kwargs: Any) -> None:
        # No input autocasting: float labels (regression, soft labels) keep float32 under mixed precision;
        # the base model casts inputs_embeds to the compute dtype itself.
        super().__init__(config, autocast=False, **kwargs)
        # Let a dict of Python lists (a tokenizer's output) through Keras's tensors-only positional check,
        # as Keras's own preprocessing layers do; `unpack_inputs` converts it.
        self._allow_non_tensor_positional_args = True
        self.uses_keras_loss = False

    def post_init(self) -> None:
        """Create every variable now, so that weights can be loaded and trained before any call."""
        build_once(self)

    # (batch, length) ids; multiple choice takes (batch, choices, length)
    serving_input_rank = 2

    @property
    def _default_save_signature(self):
        """The signature `tf.saved_model.save(model, path)` writes: int32 `input_ids` and `attention_mask` of
        any batch and length in, the output tensors out (Keras would trace one float input of unknown shape)."""
        shape = [None] * self.serving_input_rank

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.int32, name="input_ids"),
                                      tf.TensorSpec(shape, tf.int32, name="attention_mask")])
        def serving_default(input_ids, attention_mask):
            outputs = self({"input_ids": input_ids, "attention_mask": attention_mask}, training=False)
            return {k: v for k, v in outputs.items() if isinstance(v, tf.Tensor)}

        return serving_default

    def get_input_embeddings(self) -> keras.layers.Embedding:
        return getattr(self, self.base_model_prefix).get_input_embeddings()

    def _return_dict(self, return_dict: Optional[bool]) -> bool:
        return True if return_dict is None else bool(return_dict)

    # ------------------------------------------------------------------ Keras training integration
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, **kwargs: Any) -> None:
        super().compile(optimizer=optimizer, loss=loss, **kwargs)
        # Keras keeps an earlier compile's loss when this one has none; here no loss means the model's own.
        self.uses_keras_loss = loss is not None
        # The optimizer's variables, now: Keras would create them while tracing the first train step, and
        # tf.function traces a function that creates variables twice (a 4-layer model: ~10 s more per fit).
        if self.optimizer is not None and self.built and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Compile as saved in a .keras file (Keras skips this for models that override `compile`)."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    def compute_head_loss(self, *outputs_and_labels: tf.Tensor) -> tf.Tensor:
        raise ValueError(
            f"{type(self).__name__} has no loss of its own: compile it with a Keras loss, e.g. "
            f"model.compile(optimizer=..., loss=...)"
        )

    def keras_outputs(self, outputs: Mapping) -> Any:
        """The field(s) that Keras losses and metrics score: logits, or (start_logits, end_logits)."""
        fields = tuple(outputs[name] for name in self.keras_output_names)
        return fields[0] if len(fields) == 1 else fields

    def _labels(self, y: Any, x: Any) -> Optional[tuple]:
        """Labels as a tuple in `label_names` order, from `y` or else from the input dict."""
        if y is None:
            if not self.label_names or not isinstance(x, Mapping) or any(x.get(n) is None for n in self.label_names):
                return None
            y = {name: x[name] for name in self.label_names}
        if isinstance(y, Mapping):
            return tuple(y[name] for name in self.label_names)
        return tuple(y) if isinstance(y, (list, tuple)) else (y,)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The model's own loss unless `compile()` was given one. sample_weight only applies to a Keras loss."""
        if self.uses_keras_loss:
            return super().compute_loss(x, y, self.keras_outputs(y_pred), sample_weight, training)
        if y is not None:
            loss = self.compute_head_loss(*tuple(y_pred[n] for n in self.keras_output_names), *self._labels(y, x))
        elif "loss" in y_pred:
            loss = y_pred["loss"]
        elif not self.label_names:
            return self.compute_head_loss()  # raises: this model has no loss of its own
        else:
            raise ValueError(
                f"no loss to train {type(self).__name__} on: put {list(self.label_names)} in the input dict, "
                f"pass them as y, or compile with a Keras loss"
            )
        for extra in self.losses:  # regularisation terms, should a user add any
            loss = loss + tf.cast(tf.reduce_sum(extra), loss.dtype)
        # Each replica's loss is summed over replicas by the optimizer, as Keras does for its own losses.
        return loss / tf.distribute.get_strategy().num_replicas_in_sync

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels = self._labels(y, x)
        if labels is not None and len(labels) == 1:
            labels = labels[0]
        return super().compute_metrics(x, labels, self.keras_outputs(y_pred), sample_weight)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        outputs = self(x, training=False)
        return {name: value for name, value in outputs.items() if name != "loss"}

    # ------------------------------------------------------------------ weights by PyTorch name
    def pt_named_weights(self) -> dict[str, keras.Variable]:
        """{PyTorch weight name: variable}; the legacy MLM decoder, tied to the word embeddings, has none."""
        return dict(pt_named_variables(self))

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        config: Optional[DebertaConfig] = None,
        ignore_mismatched_sizes: bool = False,
        output_loading_info: bool = False,
        **config_overrides: Any,
    ):
        """Load a checkpoint folder (config.json plus tf_model.h5, safetensors or .bin, sharded or not).

        A bare-model checkpoint loads into a head model and the reverse. Missing weights keep their fresh
        initialisation and are reported, as are unexpected ones; a shape mismatch is an error unless
        `ignore_mismatched_sizes=True`. With `output_loading_info=True`, returns (model, info).
        """
        folder = resolve_checkpoint(path)
        reader = CheckpointReader(folder, prefer=("h5", "safetensors", "bin"))
        if config is None:
            config = DebertaConfig.from_pretrained(folder, **config_overrides)
            rules.fit_config_to_weights(config, reader.keys())
        model = cls(config)
        info = model.load_checkpoint(reader, ignore_mismatched_sizes=ignore_mismatched_sizes)
        return (model, info) if output_loading_info else model

    def load_checkpoint(self, reader: CheckpointReader, ignore_mismatched_sizes: bool = False) -> dict[str, list]:
        """Assign the reader's weights to this model; returns missing, unexpected and mismatched keys."""
        model_weights = self.pt_named_weights()
        to_load, info = checkpoints.match_weights(
            reader, {n: _pt_layout_shape(v, n) for n, v in model_weights.items()}, type(self).__name__,
            self.base_model_prefix, ignore_mismatched_sizes,
        )
        for model_name, ckpt_name in to_load.items():
            value = reader.numpy(ckpt_name)
            if weight_names.pt_to_tf(model_name)[1]:
                value = value.T  # torch Linear (out, in) -> Keras Dense kernel (in, out)
            variable = model_weights[model_name]
            variable.assign(tf.cast(value, variable.dtype))
        info = {"missing_keys": [n for n in model_weights if n not in to_load], **info}
        checkpoints.report_loading(logger, type(self).__name__, reader.folder, info)
        return info

    def save_pretrained(self, directory: str | os.PathLike, max_shard_size: int | str = "5GB") -> list[str]:
        """Write config.json and `tf_model.h5` (sharded past max_shard_size); returns the weight files.

        config.json names the PyTorch class in `architectures` (`DebertaForMaskedLM`), as the established
        TensorFlow tools write it, so that either backend and other tools recognise the folder.
        """
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        pt_class = type(self).__name__.removeprefix("TF")
        self.config.architectures = [pt_class]
        self.config.save_pretrained(directory)
        weights = self.pt_named_weights()
        # The established layout keeps the bare model's weights under "deberta/" too.
        prefix = "" if hasattr(self, self.base_model_prefix) else self.base_model_prefix + "."
        arrays = {weight_names.pt_to_tf(prefix + name)[0]: np.asarray(v.numpy()) for name, v in weights.items()}
        sizes = {name: array.nbytes for name, array in arrays.items()}

        def write_shard(path: str, names: list[str]) -> None:
            checkpoints.write_tf_h5(path, [(n, arrays[n]) for n in names], pt_class)

        return checkpoints.write_sharded(directory, checkpoints.TF_WEIGHTS_NAME, sizes, write_shard, max_shard_size)
