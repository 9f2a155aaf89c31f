"""Property tests: random small configs and random masks give equal, finite outputs in both backends."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deberta_pt
import deberta_tf
from deberta_common import DebertaConfig

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@st.composite
def configs(draw):
    """Any valid combination of the config flags, at sizes small enough to build quickly."""
    heads = draw(st.sampled_from([1, 2, 4]))
    relative = draw(st.booleans())
    pos_att = draw(st.sets(st.sampled_from(["c2p", "p2c", "p2p", "none"]))) if relative else set()
    config = DebertaConfig(
        vocab_size=draw(st.integers(8, 40)),
        hidden_size=heads * draw(st.sampled_from([4, 8])),
        num_hidden_layers=draw(st.integers(1, 2)),
        num_attention_heads=heads,
        intermediate_size=draw(st.integers(4, 24)),
        hidden_act=draw(st.sampled_from(["gelu", "gelu_new", "relu", "tanh", "silu"])),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=draw(st.integers(12, 24)),
        type_vocab_size=draw(st.integers(0, 3)),
        relative_attention=relative,
        max_relative_positions=draw(st.sampled_from([-1, 2, 5])),
        position_biased_input=draw(st.booleans()) or not relative,
        pos_att_type=sorted(pos_att) or None,
        talking_head=draw(st.booleans()),
        legacy=draw(st.booleans()),
        layer_norm_eps=1e-7,
    )
    if draw(st.booleans()):
        config.embedding_size = config.hidden_size + 4
    return config


def random_weights(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)


def to_tf(pt_model, tf_cls, tmp):
    pt_model.save_pretrained(tmp)
    return tf_cls.from_pretrained(tmp)


@settings(max_examples=12, **SETTINGS)
@given(config=configs(), data=st.data())
def test_random_configs_agree_across_backends(tmp_path_factory, config, data):
    if config.embedding_size != config.hidden_size and config.enhanced_mask_decoder:
        config.embedding_size = config.hidden_size
    model = deberta_pt.DebertaForMaskedLM(config).eval()
    random_weights(model, data.draw(st.integers(0, 1000)))
    tf_model = to_tf(model, deberta_tf.TFDebertaForMaskedLM, str(tmp_path_factory.mktemp("fuzz")))
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    batch, length = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 12))
    inputs = {"input_ids": rng.integers(0, config.vocab_size, size=(batch, length))}
    inputs["attention_mask"] = (rng.random((batch, length)) < 0.8).astype(np.int64)
    if config.type_vocab_size:
        inputs["token_type_ids"] = rng.integers(0, config.type_vocab_size, size=(batch, length))
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
    got = tf_model(inputs, training=False)["logits"].numpy()
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * max(1.0, np.abs(expected).max()))


@pytest.fixture(scope="module")
def mask_models(tmp_path_factory):
    config = DebertaConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=20, max_position_embeddings=16, relative_attention=True,
                           pos_att_type="c2p|p2c", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    pt_model = deberta_pt.DebertaModel(config).eval()
    random_weights(pt_model, 0)
    return pt_model, to_tf(pt_model, deberta_tf.TFDebertaModel, str(tmp_path_factory.mktemp("masks")))


@settings(max_examples=25, **SETTINGS)
@given(mask=st.lists(st.lists(st.integers(0, 1), min_size=6, max_size=6), min_size=1, max_size=4))
def test_random_masks_never_give_nan_and_agree(mask_models, mask):
    """All-padding rows and all-padding batches included."""
    pt_model, tf_model = mask_models
    mask = np.array(mask, dtype=np.int64)
    ids = np.arange(mask.size).reshape(mask.shape) % 29 + 1
    with torch.no_grad():
        out = pt_model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), output_attentions=True)
    expected = out.last_hidden_state.numpy()
    assert np.isfinite(expected).all()
    for probs in out.attentions:
        assert (probs.numpy().transpose(0, 2, 1, 3)[mask == 0] == 0).all()  # padded query rows are all zero
    got = tf_model({"input_ids": ids, "attention_mask": mask}, training=False)["last_hidden_state"].numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
