"""PyTorch and Keras DeBERTa agree to 1e-5 on every variant and head, weights moved through checkpoint folders.

Both directions: random PyTorch weights -> save_pretrained (safetensors) -> TF from_pretrained, and
TF-initialised weights -> save_pretrained (tf_model.h5) -> PyTorch from_pretrained. Compared: every output
field (loss, logits, every hidden state, every attention map) at every position, padded ones included.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

import deberta_common.rules
import deberta_pt
import deberta_tf
from variants import HEADS, VARIANTS, build_pt, make_batch, make_config, make_labels

ATOL = RTOL = 1e-5
WEIGHT_STD = 0.2  # much larger than the 0.02 init, so that a wrong term shows in the outputs


def pt_class(head: str):
    return getattr(deberta_pt, f"Deberta{head}")


def tf_class(head: str):
    return getattr(deberta_tf, f"TFDeberta{head}")


def run_pt(model, inputs: dict, **flags) -> dict:
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}, **flags)
    return dict(out)


def run_tf(model, inputs: dict, **flags) -> dict:
    return dict(model(inputs, **flags))


def assert_outputs_close(expected: dict, actual: dict) -> None:
    assert set(expected) == set(actual), (sorted(expected), sorted(actual))
    for key, value in expected.items():
        if isinstance(value, tuple):
            assert len(value) == len(actual[key]), key
            for i, (e, a) in enumerate(zip(value, actual[key])):
                np.testing.assert_allclose(np.asarray(a), e.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"{key}[{i}]")
        else:
            np.testing.assert_allclose(np.asarray(actual[key]), value.numpy(), rtol=RTOL, atol=ATOL, err_msg=key)


class Pairs:
    """One (PyTorch, Keras) model pair per (direction, variant, head), built once and reused."""

    def __init__(self, tmp_path_factory) -> None:
        self.tmp = tmp_path_factory
        self.cache = {}

    def pt_to_tf(self, variant: str, head: str):
        key = ("pt_to_tf", variant, head)
        if key not in self.cache:
            pt_model = build_pt(head, make_config(variant), std=WEIGHT_STD, seed=len(self.cache))
            folder = self.tmp.mktemp(f"pt-{variant}-{head}")
            pt_model.save_pretrained(folder)
            tf_model, info = tf_class(head).from_pretrained(folder, output_loading_info=True)
            assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
            self.cache[key] = pt_model, tf_model
        return self.cache[key]

    def tf_to_pt(self, variant: str, head: str):
        key = ("tf_to_pt", variant, head)
        if key not in self.cache:
            keras.utils.set_random_seed(len(self.cache))
            tf_model = tf_class(head)(make_config(variant, initializer_range=WEIGHT_STD))
            folder = self.tmp.mktemp(f"tf-{variant}-{head}")
            tf_model.save_pretrained(folder)
            pt_model, info = pt_class(head).from_pretrained(folder, output_loading_info=True)
            assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
            self.cache[key] = pt_model.eval(), tf_model
        return self.cache[key]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Pairs:
    return Pairs(tmp_path_factory)


def batch_with_labels(head: str, config) -> dict:
    if head == "ForMultipleChoice":  # (B, C, L): two questions with three choices each, padded differently
        batch = {k: v.reshape(2, 3, -1) for k, v in make_batch(config, batch=6).items()}
    else:
        batch = make_batch(config)
    return {**batch, **make_labels(head, config, batch)}


MULTIPLE_CHOICE_VARIANTS = ("absolute", "relative", "token_types", "embedding_projection", "emd")
ALL_CASES = [(v, h) for v in VARIANTS for h in HEADS] + [(v, "ForMultipleChoice") for v in MULTIPLE_CHOICE_VARIANTS]
# XLA compiles each case for about 2.5 s on a 2-core machine: every variant with the masked-LM head (the whole
# encoder and the most involved head), and every other head once, rather than all 80 cases.
XLA_CASES = [(v, "ForMaskedLM") for v in VARIANTS] + [("relative", h) for h in HEADS if h != "ForMaskedLM"] \
    + [("emd", "ForMultipleChoice")]


@pytest.mark.parametrize("variant,head", ALL_CASES)
def test_pytorch_weights_in_keras(pairs, variant, head):
    pt_model, tf_model = pairs.pt_to_tf(variant, head)
    inputs = batch_with_labels(head, pt_model.config)
    flags = dict(output_attentions=True, output_hidden_states=True)
    expected = run_pt(pt_model, inputs, **flags)
    assert_outputs_close(expected, run_tf(tf_model, inputs, **flags))
    # PyTorch's fused-attention path (taken without output_attentions) agrees too.
    assert_outputs_close(run_pt(pt_model, inputs), run_tf(tf_model, inputs))


@pytest.mark.parametrize("variant,head", ALL_CASES)
def test_keras_weights_in_pytorch(pairs, variant, head):
    pt_model, tf_model = pairs.tf_to_pt(variant, head)
    inputs = batch_with_labels(head, pt_model.config)
    flags = dict(output_attentions=True, output_hidden_states=True)
    assert_outputs_close(run_pt(pt_model, inputs, **flags), run_tf(tf_model, inputs, **flags))


@pytest.mark.parametrize("variant,head", ALL_CASES)
def test_inputs_embeds(pairs, variant, head):
    pt_model, tf_model = pairs.pt_to_tf(variant, head)
    inputs = batch_with_labels(head, pt_model.config)
    ids = inputs.pop("input_ids")
    with torch.no_grad():
        inputs["inputs_embeds"] = pt_model.get_input_embeddings()(torch.from_numpy(ids)).numpy()
    flags = dict(output_attentions=True, output_hidden_states=True)
    assert_outputs_close(run_pt(pt_model, inputs, **flags), run_tf(tf_model, inputs, **flags))


@pytest.mark.parametrize("variant,head", ALL_CASES)
def test_position_ids(pairs, variant, head):
    pt_model, tf_model = pairs.pt_to_tf(variant, head)
    inputs = batch_with_labels(head, pt_model.config)
    rng = np.random.default_rng(3)
    *rows, length = inputs["input_ids"].shape
    positions = np.stack([rng.permutation(length) + row for row in range(int(np.prod(rows)))])
    inputs["position_ids"] = positions.reshape(*rows, length).astype(np.int64)
    flags = dict(output_attentions=True, output_hidden_states=True)
    assert_outputs_close(run_pt(pt_model, inputs, **flags), run_tf(tf_model, inputs, **flags))


def test_position_ids_in_the_enhanced_mask_decoder(pairs):
    """The decoder's queries start from the absolute positions of position_ids, as in PyTorch."""
    pt_model, tf_model = pairs.pt_to_tf("emd", "ForMaskedLM")
    inputs = batch_with_labels("ForMaskedLM", pt_model.config)
    rng = np.random.default_rng(4)
    length = inputs["input_ids"].shape[1]
    inputs["position_ids"] = np.stack([rng.permutation(length) + 2 * row for row in range(3)]).astype(np.int64)
    expected = run_pt(pt_model, inputs)
    assert_outputs_close(expected, run_tf(tf_model, inputs))
    default = run_pt(pt_model, {k: v for k, v in inputs.items() if k != "position_ids"})
    assert np.abs(expected["logits"].numpy() - default["logits"].numpy()).max() > 1e-3  # they do matter


@pytest.mark.parametrize("variant,head", XLA_CASES)
def test_xla_matches_pytorch(pairs, variant, head):
    pt_model, tf_model = pairs.pt_to_tf(variant, head)
    inputs = batch_with_labels(head, pt_model.config)
    flags = dict(output_attentions=True, output_hidden_states=True)
    compiled = tf.function(lambda batch: tf_model(batch, **flags), jit_compile=True)
    assert_outputs_close(run_pt(pt_model, inputs, **flags), dict(compiled(inputs)))


def set_relative_block(pt_model, tf_model, block: int) -> None:
    for module in pt_model.modules():
        if isinstance(module, deberta_pt.modeling.DisentangledSelfAttention):
            module.relative_block = block
    for layer in tf_model._flatten_layers():
        if isinstance(layer, deberta_tf.modeling.TFDisentangledSelfAttention):
            layer.relative_block = block


@pytest.mark.parametrize("variant", ["relative", "short_span", "c2p", "p2c", "p2p", "emd"])
def test_position_scores_in_blocks(pairs, variant):
    """Blocks of 3 queries / keys (11 = 3 + 3 + 3 + 2) give what one block gives, in both backends, with XLA."""
    pt_model, tf_model = pairs.pt_to_tf(variant, "ForMaskedLM")
    inputs = batch_with_labels("ForMaskedLM", pt_model.config)
    expected = run_pt(pt_model, inputs, output_hidden_states=True)
    try:
        set_relative_block(pt_model, tf_model, 3)
        blocked = run_pt(pt_model, inputs, output_hidden_states=True)
        assert_outputs_close(expected, blocked)
        assert_outputs_close(expected, run_tf(tf_model, inputs, output_hidden_states=True))
        compiled = tf.function(lambda batch: tf_model(batch, output_hidden_states=True), jit_compile=True)
        assert_outputs_close(expected, dict(compiled(inputs)))
    finally:
        set_relative_block(pt_model, tf_model, deberta_common.rules.RELATIVE_BLOCK)


def set_query_block(tf_model, block: int, threshold: int) -> None:
    for layer in tf_model._flatten_layers():
        if isinstance(layer, deberta_tf.modeling.TFDisentangledSelfAttention):
            layer.query_block, layer.blocked_scores_bytes = block, threshold


@pytest.mark.parametrize("variant", ["relative", "short_span", "c2p", "p2c", "p2p", "emd", "talking_head", "absolute"])
def test_keras_inference_in_blocks_of_queries(pairs, variant, monkeypatch):
    """Keras inference attending per block of 3 queries in a loop (11 = 3 + 3 + 3 + 2, the last block starting at
    query 8) gives PyTorch's outputs eagerly, in a graph and with XLA; training and output_attentions do not loop."""
    pt_model, tf_model = pairs.pt_to_tf(variant, "ForMaskedLM")
    inputs = batch_with_labels("ForMaskedLM", pt_model.config)
    expected = run_pt(pt_model, inputs, output_hidden_states=True)
    attention = deberta_tf.modeling.TFDisentangledSelfAttention
    calls = []
    blocked = attention.blocked_attention
    monkeypatch.setattr(attention, "blocked_attention", lambda self, *args: calls.append(1) or blocked(self, *args))
    try:
        set_query_block(tf_model, 3, 0)
        runs = {
            "eager": lambda batch: tf_model(batch, output_hidden_states=True),
            "graph": tf.function(lambda batch: tf_model(batch, output_hidden_states=True)),
            "xla": tf.function(lambda batch: tf_model(batch, output_hidden_states=True), jit_compile=True),
        }
        for name, run in runs.items():
            calls.clear()
            assert_outputs_close(expected, dict(run(inputs)))
            assert calls, name
        calls.clear()
        tf_model(inputs, training=True)
        tf_model.deberta({k: v for k, v in inputs.items() if k != "labels"}, output_attentions=True)
        assert not calls
    finally:
        set_query_block(tf_model, deberta_tf.modeling.QUERY_BLOCK, deberta_tf.modeling.BLOCKED_SCORES_BYTES)


def test_keras_blocks_of_queries_where_the_scores_are_large():
    """deberta-base's 12 heads: an 8 x 512 forward's float32 scores (96 MiB per layer) are attended in blocks, 2 x 512
    (24 MiB) at once; never in training, for output_attentions or with a batch or length unknown when traced."""
    config = make_config("relative", hidden_size=768, num_attention_heads=12)
    layer = deberta_tf.modeling.TFDisentangledSelfAttention(config)
    assert layer.use_blocked_attention(8, 512, output_attentions=False, training=False)
    assert layer.use_blocked_attention(1, 2048, output_attentions=False, training=False)
    assert not layer.use_blocked_attention(2, 512, output_attentions=False, training=False)
    assert not layer.use_blocked_attention(8, 512, output_attentions=False, training=True)
    assert not layer.use_blocked_attention(8, 512, output_attentions=True, training=False)
    assert not layer.use_blocked_attention(8, tf.constant(512), output_attentions=False, training=False)
    assert not layer.use_blocked_attention(tf.constant(8), 512, output_attentions=False, training=False)


@pytest.mark.parametrize("problem", [
    "single_label_with_unlabelled", "single_label_none_labelled", "regression", "multi_label", "soft_label",
])
def test_sequence_classification_loss_rules(pairs, problem):
    pt_model, tf_model = pairs.pt_to_tf("relative", "ForSequenceClassification")
    config = pt_model.config
    batch = make_batch(config)
    rng = np.random.default_rng(5)
    labels = {
        "single_label_with_unlabelled": np.array([1, -100, 0]),
        "single_label_none_labelled": np.array([-1, -100, -100]),
        "regression": rng.normal(size=(3, config.num_labels)).astype(np.float32),
        "multi_label": rng.integers(0, 2, size=(3, config.num_labels)).astype(np.float32),
        "soft_label": rng.dirichlet(np.ones(config.num_labels), size=3).astype(np.float32),
    }[problem]
    saved = config.problem_type, config.num_labels
    try:
        if problem == "regression":
            pt_model.config.problem_type = "regression"  # the models read the config at loss time
        if problem == "multi_label":
            pt_model.config.problem_type = "multi_label_classification"
        tf_model.config.problem_type = pt_model.config.problem_type
        expected = run_pt(pt_model, {**batch, "labels": labels})["loss"].numpy()
        actual = run_tf(tf_model, {**batch, "labels": labels})["loss"].numpy()
    finally:
        pt_model.config.problem_type = tf_model.config.problem_type = saved[0]
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)
    if problem == "single_label_none_labelled":
        assert actual == 0


@pytest.mark.parametrize("head,labels", [
    ("ForQuestionAnswering", {"start_positions": np.array([-3, 5, 11]), "end_positions": np.array([11, 40, 2])}),
    ("ForTokenClassification", {"labels": np.full((3, 11), -100)}),
])
def test_token_level_loss_rules(pairs, head, labels):
    """QA positions clamp to [0, L] with L ignored; all-ignored token labels give NaN on both sides."""
    pt_model, tf_model = pairs.pt_to_tf("relative", head)
    batch = {**make_batch(pt_model.config), **labels}
    expected = run_pt(pt_model, batch)["loss"].numpy()
    actual = run_tf(tf_model, batch)["loss"].numpy()
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, equal_nan=True)


def test_weight_names_match_pytorch():
    """The Keras models hold exactly the PyTorch parameters (the tied legacy decoder excepted)."""
    cases = [(v, h) for v in ("relative", "non_legacy_mlm", "embedding_projection", "talking_head", "token_types")
             for h in HEADS]
    cases += [("emd", "ForMaskedLM"), ("p2p", "Model"), ("relative", "ForMultipleChoice")]
    for variant, head in cases:
        config = make_config(variant)
        pt_names = set(pt_class(head)(config).state_dict()) - {"cls.predictions.decoder.weight"}
        assert set(tf_class(head)(config).pt_named_weights()) == pt_names, (variant, head)


@pytest.mark.parametrize("variant,head", [(v, h) for v, h in ALL_CASES if h != "Model"])
def test_gradients_match(pairs, variant, head):
    """In training mode (dropout probabilities are 0 in these configs), the gradient of the loss with
    respect to every weight agrees to 1e-4 of the largest gradient of that weight."""
    pt_model, tf_model = pairs.pt_to_tf(variant, head)
    inputs = batch_with_labels(head, pt_model.config)
    pt_model.train()
    pt_model.zero_grad()
    try:
        pt_model(**{k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}).loss.backward()
        pt_grads = {n: p.grad for n, p in pt_model.named_parameters() if p.grad is not None}
    finally:
        pt_model.eval()
    variables = tf_model.pt_named_weights()
    names = list(variables)
    with tf.GradientTape() as tape:
        loss = tf_model(inputs, training=True)["loss"]
    grads = dict(zip(names, tape.gradient(loss, [variables[n] for n in names])))
    from deberta_common.weight_names import pt_to_tf

    # Weights whose gradient is round-off around zero (e.g. a bias that a softmax cancels) are compared
    # against a hundredth of the model's largest gradient instead of their own.
    floor = 1e-2 * max(g.abs().max().item() for g in pt_grads.values())
    checked = 0
    for name, pt_grad in pt_grads.items():
        tf_grad = grads[name]
        tf_grad = np.zeros(pt_grad.shape, np.float32) if tf_grad is None else tf.convert_to_tensor(tf_grad).numpy()
        if pt_to_tf(name)[1]:
            tf_grad = tf_grad.T
        expected = pt_grad.numpy()
        scale = max(np.abs(expected).max(), floor)
        np.testing.assert_allclose(tf_grad, expected, rtol=0, atol=1e-4 * scale, err_msg=f"{variant} {head} {name}")
        checked += 1
    assert checked == len(pt_grads) and checked > 10
