"""What the original DeBERTa has and other ports dropped: EMD, p2p, multiple choice (Keras side).

Every variant and head is compared with PyTorch in test_equivalence.py; here: what only the Keras side has
(XLA with unknown lengths, Keras saving and training), gradients against PyTorch, original checkpoints
without a `legacy` key, and conversion round trips with verification on.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

import deberta_pt
import deberta_tf
from conversion.convert import convert
from deberta_common import weight_names
from deberta_common.checkpoints import CheckpointReader
from variants import build_pt, make_batch, make_config, make_labels

EMD = dict(legacy=False, position_biased_input=False)
NO_LOSS_INFO = {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}


def pt_to_tf(head, config, folder, std=0.2):
    """A PyTorch model with N(0, std) weights and the Keras model loaded from its checkpoint."""
    pt_model = build_pt(head, config, std=std)
    pt_model.save_pretrained(folder)
    tf_model, info = getattr(deberta_tf, "TFDeberta" + head).from_pretrained(folder, output_loading_info=True)
    assert info == NO_LOSS_INFO
    return pt_model, tf_model


def choices_batch(config, questions=2, choices=3, **kwargs):
    """(questions, choices, L) inputs, the choices padded to different lengths."""
    flat = make_batch(config, batch=questions * choices, **kwargs)
    return {k: v.reshape(questions, choices, -1) for k, v in flat.items()}


def assert_same_outputs(a, b, atol=0.0):
    assert list(a) == list(b)
    for key in a:
        x, y = (a[key], b[key]) if isinstance(a[key], tuple) else ((a[key],), (b[key],))
        for u, v in zip(x, y):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=0, atol=atol, err_msg=key)


# ----------------------------------------------------------------------------- Enhanced Mask Decoder
def test_emd_with_relative_attention_and_padding():
    config = make_config("relative", initializer_range=0.2, **EMD)
    keras.utils.set_random_seed(0)
    model = deberta_tf.TFDebertaForMaskedLM(config)
    batch = make_batch(config)
    together = model(batch).logits.numpy()
    for row in range(3):
        n = int(batch["attention_mask"][row].sum())
        alone = model({k: v[row : row + 1, :n] for k, v in batch.items()}).logits.numpy()
        np.testing.assert_allclose(together[row, :n], alone[0], rtol=0, atol=1e-5)
    # the decoder does change the predictions: the plain head on the last layer differs
    word_embeddings = model.deberta.embeddings.word_embeddings.embeddings
    plain = model.lm_predictions(model.deberta(batch).last_hidden_state, word_embeddings).numpy()
    assert np.abs(plain - together).max() > 1e-2
    # hidden states only when asked for, as in PyTorch
    assert "hidden_states" not in model(batch) and len(model(batch, output_hidden_states=True).hidden_states) == 3


def test_emd_and_p2p_xla_with_lengths_unknown_at_trace_time():
    """One XLA trace for every length: the decoder's positions and relative rows come from tf.shape."""
    keras.utils.set_random_seed(0)
    config = make_config("emd", pos_att_type="c2p|p2c|p2p", max_relative_positions=4, initializer_range=0.2)
    model = deberta_tf.TFDebertaForMaskedLM(config)
    spec = {name: tf.TensorSpec([None, None], tf.int64) for name in ("input_ids", "attention_mask")}
    compiled = tf.function(lambda x: model(x), input_signature=[spec], jit_compile=True)
    for length in (3, 11):
        batch = make_batch(config, length=length)
        assert_same_outputs(compiled(batch), model(batch), atol=1e-5)


def test_emd_mixed_precision():
    keras.utils.set_random_seed(0)
    reference = deberta_tf.TFDebertaForMaskedLM(make_config("emd"))
    model = deberta_tf.TFDebertaForMaskedLM(reference.config, dtype="mixed_float16")
    model.set_weights(reference.get_weights())
    batch = make_batch(reference.config)
    logits = model(batch).logits
    assert logits.dtype == tf.float16
    np.testing.assert_allclose(tf.cast(logits, tf.float32).numpy(), reference(batch).logits.numpy(), atol=5e-3)


def test_original_checkpoint_without_legacy_key_uses_its_head(tmp_path):
    """config.json of the original checkpoints has no `legacy`: their lm_predictions.* weights decide."""
    config = make_config("relative", **EMD)
    pt_model = build_pt("ForMaskedLM", config)
    pt_model.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    del data["legacy"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    loaded, info = deberta_tf.TFDebertaForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert loaded.config.legacy is False and loaded.config.enhanced_mask_decoder and info == NO_LOSS_INFO
    assert "deberta.embeddings.position_embeddings.weight" in loaded.pt_named_weights()
    ids = np.array([[3, 4, 5, 6]])
    with torch.no_grad():
        expected = pt_model(input_ids=torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(loaded(ids).logits.numpy(), expected, rtol=0, atol=1e-5)
    # a `legacy` given explicitly is kept
    overridden, info = deberta_tf.TFDebertaForMaskedLM.from_pretrained(tmp_path, legacy=True, output_loading_info=True)
    assert overridden.config.legacy is True and any(n.startswith("lm_predictions.") for n in info["unexpected_keys"])


# ----------------------------------------------------------------------------- gradients against PyTorch
@pytest.mark.parametrize("head,variant", [("ForMaskedLM", "emd"), ("ForMultipleChoice", "p2p")])
def test_gradients_match_pytorch(tmp_path, head, variant):
    """The loss and the gradient of every weight (the decoder reuses the last layer: its gradients add up)."""
    config = make_config(variant, pos_att_type="c2p|p2c|p2p")
    pt_model, tf_model = pt_to_tf(head, config, tmp_path)
    batch = choices_batch(config) if head == "ForMultipleChoice" else make_batch(config)
    batch.update(make_labels(head, config, batch))
    loss = pt_model(**{k: torch.from_numpy(v) for k, v in batch.items()}).loss
    loss.backward()
    variables = tf_model.pt_named_weights()
    with tf.GradientTape() as tape:
        tf_loss = tf_model(batch, training=True).loss
    gradients = dict(zip(variables, tape.gradient(tf_loss, list(variables.values()))))
    np.testing.assert_allclose(tf_loss.numpy(), loss.item(), rtol=1e-5, atol=1e-5)
    checked = 0
    for name, parameter in pt_model.named_parameters():
        expected = parameter.grad.numpy()
        actual = np.asarray(tf.convert_to_tensor(gradients[name]))
        if weight_names.pt_to_tf(name)[1]:
            actual = actual.T
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5, err_msg=name)
        checked += 1
    assert checked == len(variables)


# ----------------------------------------------------------------------------- multiple choice
def test_multiple_choice():
    keras.utils.set_random_seed(0)
    config = make_config("relative", initializer_range=0.2)
    model = deberta_tf.TFDebertaForMultipleChoice(config)
    flat = make_batch(config, batch=6)
    choices = {k: v.reshape(2, 3, -1) for k, v in flat.items()}
    labels = np.array([2, 0])
    out = model({**choices, "labels": labels}, output_hidden_states=True)
    assert list(out) == ["loss", "logits", "hidden_states"] and tuple(out.logits.shape) == (2, 3)
    assert tuple(out.hidden_states[0].shape) == (6, 11, config.hidden_size)
    # each choice's score is the pooled classifier score of that sequence alone
    expected = model.classifier(model.pooler(model.deberta(flat).last_hidden_state)).numpy().reshape(2, 3)
    np.testing.assert_allclose(out.logits.numpy(), expected, rtol=0, atol=1e-5)
    logp = tf.nn.log_softmax(expected, -1).numpy()
    np.testing.assert_allclose(out.loss.numpy(), -(logp[0, 2] + logp[1, 0]) / 2, rtol=1e-6)
    # inputs_embeds (B, C, L, E) give the same scores
    embeds = model.get_input_embeddings()(choices["input_ids"])
    by_embeds = model(inputs_embeds=embeds, attention_mask=choices["attention_mask"]).logits.numpy()
    np.testing.assert_allclose(by_embeds, out.logits.numpy(), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="choices"):
        model(flat["input_ids"])
    with pytest.raises(ValueError, match="choices"):
        model(inputs_embeds=embeds[0])


def test_multiple_choice_keras_saving_and_training(tmp_path):
    keras.utils.set_random_seed(0)
    config = make_config("relative", num_hidden_layers=1)
    model = deberta_tf.TFDebertaForMultipleChoice(config)
    inputs = choices_batch(config, questions=4, choices=2, length=9, seed=4)
    inputs["labels"] = np.array([1, 0, 0, 1])
    # get_config / from_config
    clone = deberta_tf.TFDebertaForMultipleChoice.from_config(model.get_config())
    assert clone.config == model.config and [v.shape for v in clone.weights] == [v.shape for v in model.weights]
    # fit on the model's own loss (labels in the input dict), in a graph with the batch size unknown
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    losses = model.fit(tf.data.Dataset.from_tensor_slices(inputs).batch(2), epochs=3, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    predictions = model.predict({k: v for k, v in inputs.items() if k != "labels"}, batch_size=2, verbose=0)
    assert set(predictions) == {"logits"} and predictions["logits"].shape == (4, 2)
    # .keras file, compiled state included
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded) is deberta_tf.TFDebertaForMultipleChoice and loaded.config == model.config
    assert_same_outputs(loaded(inputs), model(inputs))
    assert loaded.compiled and not loaded.uses_keras_loss
    # tf_model.h5 checkpoint folder
    model.save_pretrained(tmp_path / "h5")
    assert json.loads((tmp_path / "h5" / "config.json").read_text())["architectures"] == ["DebertaForMultipleChoice"]
    reloaded, info = deberta_tf.TFDebertaForMultipleChoice.from_pretrained(tmp_path / "h5", output_loading_info=True)
    assert info == NO_LOSS_INFO
    assert_same_outputs(reloaded(inputs), model(inputs))
    pt_model = deberta_pt.DebertaForMultipleChoice.from_pretrained(tmp_path / "h5").eval()
    with torch.no_grad():
        expected = pt_model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
    np.testing.assert_allclose(model(inputs).logits.numpy(), expected, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- conversion, verification on
def tensors(folder):
    reader = CheckpointReader(str(folder))
    return {k: reader.numpy(k) for k in reader.keys()}


def test_multiple_choice_conversion_round_trip(tmp_path):
    build_pt("ForMultipleChoice", make_config("token_types")).save_pretrained(tmp_path / "pt")
    convert(str(tmp_path / "pt"), str(tmp_path / "tf"), to="tf", log=lambda _: None)  # verified on (1, 2, L)
    assert (tmp_path / "tf" / "tf_model.h5").exists()
    convert(str(tmp_path / "tf"), str(tmp_path / "back"), to="pt", log=lambda _: None)
    source, back = tensors(tmp_path / "pt"), tensors(tmp_path / "back")
    assert sorted(source) == sorted(back) and all(np.array_equal(source[k], back[k]) for k in source)


def test_original_emd_checkpoint_conversion_round_trip(tmp_path):
    """An original checkpoint: EMD head, p2p, no `legacy` key; both directions verified against each other."""
    build_pt("ForMaskedLM", make_config("emd", pos_att_type="c2p|p2c|p2p")).save_pretrained(tmp_path / "pt")
    data = json.loads((tmp_path / "pt" / "config.json").read_text())
    del data["legacy"]
    (tmp_path / "pt" / "config.json").write_text(json.dumps(data))
    log = []
    convert(str(tmp_path / "pt"), str(tmp_path / "tf"), to="tf", log=log.append)
    assert any(line.startswith("verify logits") for line in log)
    convert(str(tmp_path / "tf"), str(tmp_path / "back"), to="pt", log=log.append)
    assert sum(line.startswith("verify logits") for line in log) == 2
    source, back = tensors(tmp_path / "pt"), tensors(tmp_path / "back")
    assert sorted(source) == sorted(back) and all(np.array_equal(source[k], back[k]) for k in source)
    assert deberta_tf.TFDebertaForMaskedLM.from_pretrained(tmp_path / "tf").config.enhanced_mask_decoder
