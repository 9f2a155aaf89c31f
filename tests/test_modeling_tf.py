"""The Keras models on their own: outputs, inputs, XLA, Keras fit/evaluate/predict, saving, mixed precision, errors."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import deberta_tf
from deberta_common.checkpoints import CheckpointError
from deberta_common.outputs import ModelOutput
from variants import HEADS, make_batch, make_config, make_labels

# Mixed-precision logits against float32 ones, with the default (std 0.02) initialisation of the tiny configs.
MIXED_PRECISION_ATOL = {"mixed_float16": 5e-3, "mixed_bfloat16": 2e-2}
LOSS_ATOL = {"mixed_float16": 1e-3, "mixed_bfloat16": 5e-3}


def tf_class(head: str):
    return getattr(deberta_tf, f"TFDeberta{head}")


def inputs_for(head: str, config, **kwargs) -> dict:
    batch = make_batch(config, **kwargs)
    return {**batch, **make_labels(head, config, batch)}


def assert_same_outputs(a, b, atol: float = 0.0) -> None:
    assert list(a) == list(b)
    for key in a:
        x, y = (a[key], b[key]) if isinstance(a[key], tuple) else ((a[key],), (b[key],))
        for u, v in zip(x, y):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=0, atol=atol, err_msg=key)


def assert_masked_keys_zero(attention: np.ndarray, mask: np.ndarray) -> None:
    """attention (B, H, L, L): the probability of every padded key is exactly 0."""
    assert np.all(attention[np.broadcast_to(~mask[:, None, None, :], attention.shape)] == 0)


@pytest.fixture(scope="module")
def models():
    """One model per (variant, head), built once."""
    cache = {}

    def get(variant: str, head: str):
        if (variant, head) not in cache:
            keras.utils.set_random_seed(len(cache))
            cache[variant, head] = tf_class(head)(make_config(variant))
        return cache[variant, head]

    return get


# ----------------------------------------------------------------------------- outputs
EXPECTED_FIELDS = {
    "Model": {"last_hidden_state": (3, 11, 32)},
    "ForMaskedLM": {"loss": (), "logits": (3, 11, 99)},
    "ForSequenceClassification": {"loss": (), "logits": (3, 2)},
    "ForTokenClassification": {"loss": (), "logits": (3, 11, 2)},
    "ForQuestionAnswering": {"loss": (), "start_logits": (3, 11), "end_logits": (3, 11)},
}


@pytest.mark.parametrize("head", HEADS)
def test_output_shapes(models, head):
    model = models("relative", head)
    inputs = inputs_for(head, model.config)
    out = model(inputs, output_attentions=True, output_hidden_states=True)
    assert isinstance(out, ModelOutput)
    assert list(out) == [*EXPECTED_FIELDS[head], "hidden_states", "attentions"]
    for name, shape in EXPECTED_FIELDS[head].items():
        assert tuple(out[name].shape) == shape, name
    assert [tuple(h.shape) for h in out.hidden_states] == [(3, 11, 32)] * 3
    assert [tuple(a.shape) for a in out.attentions] == [(3, 4, 11, 11)] * 2
    # Masked attention probabilities are exactly 0; rows of padded queries are all 0.
    mask = inputs["attention_mask"].astype(bool)
    for attention in out.attentions:
        assert_masked_keys_zero(attention.numpy(), mask)
        row_sums = attention.numpy().sum(-1).transpose(0, 2, 1)  # (B, L, H)
        np.testing.assert_allclose(row_sums[mask], 1, atol=1e-6)
        assert np.all(row_sums[~mask] == 0)
    as_tuple = model(inputs, output_attentions=True, output_hidden_states=True, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(out)
    assert_same_outputs(dict(zip(out, as_tuple)), out)


def test_padded_positions_do_not_change_valid_outputs(models):
    model = models("relative", "ForTokenClassification")
    batch = make_batch(model.config)
    other = {k: v.copy() for k, v in batch.items()}
    other["input_ids"][batch["attention_mask"] == 0] = 7
    a, b = model(batch)["logits"].numpy(), model(other)["logits"].numpy()
    valid = batch["attention_mask"] == 1
    np.testing.assert_allclose(a[valid], b[valid], atol=1e-6)


# ----------------------------------------------------------------------------- inputs
def test_dict_keyword_numpy_and_int_widths_agree(models):
    model = models("token_types", "ForMaskedLM")
    inputs = inputs_for("ForMaskedLM", model.config)
    expected = model(inputs)
    as_tensors = {k: tf.constant(v) for k, v in inputs.items()}
    int32 = {k: tf.constant(v, tf.int32) for k, v in inputs.items()}
    assert_same_outputs(model(as_tensors), expected)
    assert_same_outputs(model(**as_tensors), expected)
    assert_same_outputs(model(**inputs), expected)
    assert_same_outputs(model(int32), expected)
    assert_same_outputs(model(as_tensors["input_ids"], attention_mask=int32["attention_mask"],
                              token_type_ids=inputs["token_type_ids"], labels=inputs["labels"]), expected)
    assert_same_outputs(model({k: v.tolist() for k, v in inputs.items()}), expected)


def test_input_errors(models):
    model = models("relative", "Model")
    batch = make_batch(model.config)
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        model(batch, inputs_embeds=np.zeros((3, 11, 32), np.float32))
    with pytest.raises(ValueError, match="unknown input keys"):
        model({**batch, "offset_mapping": batch["input_ids"]})
    with pytest.raises(ValueError, match="given both"):
        model(batch, attention_mask=batch["attention_mask"])
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(batch["input_ids"], attention_mask=batch["attention_mask"][:, :5])
    with pytest.raises(TypeError, match="integers"):
        model(batch["input_ids"].astype(np.float32))


@pytest.mark.parametrize("field,limit,variant", [
    ("input_ids", 99, "token_types"),
    ("token_type_ids", 2, "token_types"),
    ("position_ids", 64, "absolute"),
])
def test_out_of_range_ids_raise(models, field, limit, variant):
    model = models(variant, "Model")
    batch = make_batch(model.config)
    for bad in (limit, -1):
        values = dict(batch)
        values[field] = batch.get(field, np.zeros_like(batch["input_ids"])).copy()
        values[field][0, 2] = bad
        with pytest.raises(ValueError, match=rf"{field} must be in \[0, {limit}\)"):
            model(values)
    # In a (non-XLA) graph the check is an assert that runs before the gather.
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"{field} must be in \[0, {limit}\)"):
        tf.function(lambda x: model(x))(values)


def test_sequence_longer_than_absolute_positions_raises(models):
    model = models("absolute", "Model")
    with pytest.raises(ValueError, match="exceeds max_position_embeddings"):
        model(np.ones((1, 65), np.int64))
    models("relative", "Model")(np.ones((1, 65), np.int64))  # relative-only positions have no limit


def test_padding_row_starts_at_zero_and_gets_no_gradient(models):
    # (Not an MLM model: its tied decoder gives the padding row a gradient, in torch too.)
    model = models("relative", "ForTokenClassification")
    table = model.get_input_embeddings().embeddings
    assert not np.any(table.numpy()[model.config.pad_token_id])
    inputs = inputs_for("ForTokenClassification", model.config)
    inputs["attention_mask"][:] = 1  # pad ids inside the attended part would otherwise get a gradient
    with tf.GradientTape() as tape:
        loss = model(inputs)["loss"]
    gradient = tf.convert_to_tensor(tape.gradient(loss, table))
    assert not np.any(gradient.numpy()[model.config.pad_token_id])
    assert np.any(gradient.numpy()[inputs["input_ids"][0, 0]])


# ----------------------------------------------------------------------------- XLA
@pytest.mark.parametrize("variant,head", [
    ("relative", "ForMaskedLM"), ("talking_head", "ForQuestionAnswering"),
    ("short_span", "ForTokenClassification"), ("absolute", "ForSequenceClassification"),
])
def test_xla_inference_matches_eager(models, variant, head):
    model = models(variant, head)
    inputs = inputs_for(head, model.config)
    flags = dict(output_attentions=True, output_hidden_states=True)
    compiled = tf.function(lambda x: model(x, **flags), jit_compile=True)
    assert_same_outputs(compiled(inputs), model(inputs, **flags), atol=1e-5)


def test_xla_with_lengths_unknown_at_trace_time(models):
    """One trace for every length: the relative span and positions come from tf.shape inside XLA."""
    model = models("short_span", "ForSequenceClassification")
    spec = {name: tf.TensorSpec([None, None], tf.int64) for name in ("input_ids", "attention_mask")}
    compiled = tf.function(lambda x: model(x, output_attentions=True), input_signature=[spec], jit_compile=True)
    for length in (3, 11):
        batch = make_batch(model.config, length=length)
        assert_same_outputs(compiled(batch), model(batch, output_attentions=True), atol=1e-5)


def small_dataset(head: str, config, with_labels_in_x: bool = True) -> tf.data.Dataset:
    inputs = inputs_for(head, config, batch=8, length=9, seed=4)
    if with_labels_in_x:
        return tf.data.Dataset.from_tensor_slices(inputs).batch(4)
    labels = {k: inputs.pop(k) for k in deberta_tf.TFDebertaPreTrainedModel.label_names if k in inputs}
    return tf.data.Dataset.from_tensor_slices((inputs, labels["labels"])).batch(4)


@pytest.mark.slow
def test_fit_on_internal_loss_with_xla():
    keras.utils.set_random_seed(0)
    config = make_config("relative", num_hidden_layers=1)
    model = deberta_tf.TFDebertaForTokenClassification(config)
    data = small_dataset("ForTokenClassification", config)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    # compile() creates the optimizer's variables: creating them while tracing would trace the step twice
    traces, train_step = [], model.train_step
    model.train_step = lambda data: traces.append(1) or train_step(data)
    losses = model.fit(data, epochs=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert len(traces) == 1
    assert np.isfinite(model.evaluate(data, verbose=0))
    predictions = model.predict(data, verbose=0)
    assert set(predictions) == {"logits"} and predictions["logits"].shape == (8, 9, 2)


@pytest.mark.slow
def test_fit_on_keras_loss_with_xla():
    keras.utils.set_random_seed(0)
    config = make_config("talking_head", num_hidden_layers=1)
    model = deberta_tf.TFDebertaForSequenceClassification(config)
    data = small_dataset("ForSequenceClassification", config, with_labels_in_x=False)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], jit_compile=True,
    )
    history = model.fit(data, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] and "accuracy" in history
    # Compiling again without a loss goes back to the model's own (Keras alone would keep the old loss).
    model.compile(optimizer="adam", run_eagerly=True)
    inputs = inputs_for("ForSequenceClassification", config, batch=4)
    evaluated = model.evaluate(inputs, batch_size=4, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(evaluated, model(inputs).loss, rtol=1e-6)


def test_fit_on_model_loss_with_labels_as_y():
    """No Keras loss and (x, y) data: the model's own loss of y, here QA positions given as a dict."""
    config = make_config("relative", num_hidden_layers=1)
    model = deberta_tf.TFDebertaForQuestionAnswering(config)
    inputs = inputs_for("ForQuestionAnswering", config, batch=4)
    y = {k: inputs.pop(k) for k in ("start_positions", "end_positions")}
    expected = model({**inputs, **y})["loss"].numpy()
    model.compile(optimizer=keras.optimizers.SGD(0.0), run_eagerly=True)
    np.testing.assert_allclose(model.evaluate(inputs, y, batch_size=4, verbose=0), expected, rtol=1e-6)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    losses = model.fit(inputs, y, batch_size=4, epochs=3, verbose=0).history["loss"]
    assert losses[-1] < losses[0]


def test_fit_without_any_loss_explains():
    model = deberta_tf.TFDebertaModel(make_config("relative", num_hidden_layers=1))
    model.compile(optimizer="adam", run_eagerly=True)
    with pytest.raises(ValueError, match="no loss of its own"):
        model.fit(make_batch(model.config), np.zeros((3, 11, 32)), verbose=0)


# ----------------------------------------------------------------------------- mixed precision
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_runs_and_trains(models, policy):
    reference = models("relative", "ForMaskedLM")
    inputs = inputs_for("ForMaskedLM", reference.config)
    model = deberta_tf.TFDebertaForMaskedLM(reference.config, dtype=policy)
    model.set_weights(reference.get_weights())
    out, expected = model(inputs, output_attentions=True), reference(inputs)
    assert out.logits.dtype == policy.removeprefix("mixed_") and out.loss.dtype == tf.float32
    logits = tf.cast(out.logits, tf.float32).numpy()
    assert np.all(np.isfinite(logits))
    np.testing.assert_allclose(logits, expected.logits.numpy(), atol=MIXED_PRECISION_ATOL[policy])
    np.testing.assert_allclose(out.loss.numpy(), expected.loss.numpy(), atol=LOSS_ATOL[policy])
    for attention in out.attentions:
        assert_masked_keys_zero(tf.cast(attention, tf.float32).numpy(), inputs["attention_mask"].astype(bool))
    assert all(v.dtype == "float32" for v in model.weights)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
    losses = model.fit(tf.data.Dataset.from_tensor_slices(inputs).batch(3), epochs=2, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_gradients_of_padded_rows_are_finite(models, policy):
    """The gradients of a padded batch, taken without the loss scaling that would skip a step with non-finite ones,
    are finite: the mask's bias stays finite in the compute dtype (no -inf), also on a padded query's row, where
    every key is masked and an infinite bias would make the softmax NaN."""
    reference = models("relative", "ForMaskedLM")
    inputs = inputs_for("ForMaskedLM", reference.config)
    model = deberta_tf.TFDebertaForMaskedLM(reference.config, dtype=policy)
    model.set_weights(reference.get_weights())
    with tf.GradientTape() as tape:
        loss = model(inputs).loss
    gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables) if g is not None]
    assert len(gradients) > 10 and all(np.isfinite(g.numpy()).all() for g in gradients)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_in_blocks_of_queries(models, policy, monkeypatch):
    """Inference attending per block of 3 queries (`blocked_attention`) runs in float16 / bfloat16, eagerly and with
    XLA, within mixed precision's tolerance of float32 (test_equivalence checks the blocks' float32 math)."""
    monkeypatch.setattr(deberta_tf.modeling, "QUERY_BLOCK", 3)
    monkeypatch.setattr(deberta_tf.modeling, "BLOCKED_SCORES_BYTES", 0)
    reference = models("relative", "ForMaskedLM")
    inputs = inputs_for("ForMaskedLM", reference.config)
    model = deberta_tf.TFDebertaForMaskedLM(reference.config, dtype=policy)
    model.set_weights(reference.get_weights())
    attention = model.deberta.encoder.layer[0].attention.self
    assert attention.use_blocked_attention(3, 11, output_attentions=False, training=False)
    expected = reference(inputs).logits.numpy()
    for run in (model, tf.function(lambda batch: model(batch), jit_compile=True)):
        logits = tf.cast(run(inputs).logits, tf.float32).numpy()
        np.testing.assert_allclose(logits, expected, atol=MIXED_PRECISION_ATOL[policy])


# ----------------------------------------------------------------------------- saving
def test_get_config_round_trip(models):
    model = models("non_legacy_mlm", "ForMaskedLM")
    clone = deberta_tf.TFDebertaForMaskedLM.from_config(model.get_config())
    assert clone.config == model.config and clone.name == model.name
    assert [v.shape for v in clone.weights] == [v.shape for v in model.weights]
    json.dumps(model.get_config())


@pytest.mark.parametrize("variant,head", [("non_legacy_mlm", "ForMaskedLM"), ("relative", "ForQuestionAnswering")])
def test_keras_file_round_trip(models, tmp_path, variant, head):
    model = models(variant, head)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))  # builds the optimizer, whose variables are saved too
    inputs = inputs_for(head, model.config)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert_same_outputs(loaded(inputs), model(inputs))
    assert loaded.compiled and not loaded.uses_keras_loss and loaded.optimizer.learning_rate == 1e-3


def test_save_and_load_weights(models, tmp_path):
    model = models("talking_head", "ForSequenceClassification")
    model.save_weights(tmp_path / "w.weights.h5")
    other = deberta_tf.TFDebertaForSequenceClassification(model.config)
    other.load_weights(tmp_path / "w.weights.h5")
    inputs = inputs_for("ForSequenceClassification", model.config)
    assert_same_outputs(other(inputs), model(inputs))


@pytest.mark.parametrize("variant,head", [("relative", "ForMaskedLM"), ("embedding_projection", "Model")])
def test_save_pretrained_round_trip(models, tmp_path, variant, head):
    model = models(variant, head)
    files = model.save_pretrained(tmp_path)
    assert [os.path.basename(f) for f in files] == ["tf_model.h5"]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == [f"Deberta{head}"]
    loaded, info = tf_class(head).from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    inputs = inputs_for(head, model.config)
    assert_same_outputs(loaded(inputs), model(inputs))


def test_sharded_save_pretrained(models, tmp_path):
    model = models("relative", "ForTokenClassification")
    files = model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert len(files) > 1 and (tmp_path / "tf_model.h5.index.json").exists()
    inputs = inputs_for("ForTokenClassification", model.config)
    assert_same_outputs(deberta_tf.TFDebertaForTokenClassification.from_pretrained(tmp_path)(inputs), model(inputs))


def test_bare_and_head_checkpoints_load_into_each_other(models, tmp_path, caplog):
    head_model = models("relative", "ForSequenceClassification")
    head_model.save_pretrained(tmp_path / "head")
    bare, info = deberta_tf.TFDebertaModel.from_pretrained(tmp_path / "head", output_loading_info=True)
    assert info["missing_keys"] == [] and sorted(info["unexpected_keys"]) == [
        "classifier.bias", "classifier.weight", "pooler.dense.bias", "pooler.dense.weight"]
    batch = make_batch(head_model.config)
    assert_same_outputs(bare(batch), head_model.deberta(batch))
    bare.save_pretrained(tmp_path / "bare")
    with caplog.at_level("WARNING", logger="deberta_tf"):
        head, info = deberta_tf.TFDebertaForTokenClassification.from_pretrained(tmp_path / "bare", output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"] and info["unexpected_keys"] == []
    assert "newly initialised" in caplog.text
    assert_same_outputs(head.deberta(batch), bare(batch))


def test_shape_mismatch(models, tmp_path):
    models("relative", "ForSequenceClassification").save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"'classifier.weight' has shape \(2, 32\) in the checkpoint but \(3, 32\)"):
        deberta_tf.TFDebertaForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    model, info = deberta_tf.TFDebertaForSequenceClassification.from_pretrained(
        tmp_path, num_labels=3, ignore_mismatched_sizes=True, output_loading_info=True)
    assert [m[0] for m in info["mismatched_keys"]] == ["classifier.weight", "classifier.bias"]
    assert model(make_batch(model.config)).logits.shape == (3, 3)
