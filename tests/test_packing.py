"""Sequences packed into rows with a (B, L, L) attention mask give what each gives alone, in both backends.

`pack_sequences` lays sequences of mixed lengths side by side in rows; the pair mask keeps each one from
seeing the others. The models must then return, at every token, what the same sequence returns in an ordinary
padded batch with a (B, L) mask: relative positions depend only on i - j, and position_ids restart per sequence.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch

import deberta_pt
import deberta_tf
from deberta_common.data import pack_sequences, pad_batch, unpack_sequences
from deberta_common.rules import IGNORE_INDEX
from variants import build_pt, make_config

ATOL = RTOL = 1e-5
LENGTHS = (5, 9, 3, 7, 2, 4)  # packed into rows of 12: [9 | 3], [7 | 5], [4 | 2]
ROW = 12


def sequences(config, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, config.vocab_size, size=n).tolist() for n in LENGTHS]


def padded(config, seqs: list[list[int]], **fields) -> dict[str, np.ndarray]:
    """The same sequences as an ordinary batch, one per row, right-padded, with a (B, L) mask."""
    batch = {"input_ids": pad_batch(seqs, config.pad_token_id), "attention_mask": pad_batch([[1] * len(s) for s in seqs], 0)}
    for name, values in fields.items():
        batch[name] = pad_batch(values, IGNORE_INDEX if name == "labels" else 0)
    return batch


def tokens_of_padded(values: np.ndarray) -> list[np.ndarray]:
    return [values[i, :n] for i, n in enumerate(LENGTHS)]


def assert_per_sequence_close(packed_values: np.ndarray, places, padded_values: np.ndarray, what: str) -> None:
    for index, (got, want) in enumerate(zip(unpack_sequences(packed_values, places), tokens_of_padded(padded_values))):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{what}, sequence {index}")


def torch_inputs(batch: dict) -> dict:
    return {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}


def test_pack_sequences_layout():
    seqs = [[10 + i] * n for i, n in enumerate(LENGTHS)]
    types = [[i % 2] * n for i, n in enumerate(LENGTHS)]
    labels = [[7] * n for n in LENGTHS]
    packed, places = pack_sequences(seqs, ROW, pad_token_id=0, token_type_ids=types, labels=labels)
    # first fit, longest first: 9 -> row 0, 7 -> row 1, 5 -> row 1 after the 7, 4 -> row 2, 3 -> row 0, 2 -> row 2
    assert places == [(1, 7, 12), (0, 0, 9), (0, 9, 12), (1, 0, 7), (2, 4, 6), (2, 0, 4)]
    assert packed["input_ids"].shape == packed["position_ids"].shape == (3, ROW)
    assert packed["attention_mask"].shape == (3, ROW, ROW)
    want_mask = np.zeros((3, ROW, ROW), dtype=np.int8)
    for row, start, stop in places:
        want_mask[row, start:stop, start:stop] = 1
    np.testing.assert_array_equal(packed["attention_mask"], want_mask)
    for index, (row, start, stop) in enumerate(places):
        assert packed["input_ids"][row, start:stop].tolist() == seqs[index]
        assert packed["position_ids"][row, start:stop].tolist() == list(range(stop - start))
        assert packed["token_type_ids"][row, start:stop].tolist() == types[index]
    assert [s.tolist() for s in unpack_sequences(packed["labels"], places)] == labels
    assert packed["input_ids"][2, 6:].tolist() == [0] * 6  # padding: pad_token_id, labels -100, mask 0
    assert packed["labels"][2, 6:].tolist() == [IGNORE_INDEX] * 6
    assert not packed["attention_mask"][2, 6:].any() and not packed["attention_mask"][2, :, 6:].any()


@pytest.mark.parametrize("bad, message", [
    (dict(input_ids=[[1, 2], []]), r"input_ids\[1\] has 0 tokens; each sequence needs 1 to 4"),
    (dict(input_ids=[[1, 2, 3, 4, 5]]), r"input_ids\[0\] has 5 tokens; each sequence needs 1 to 4"),
    (dict(input_ids=[[1, 2], [3]], labels=[[1, 2]]), r"labels has 1 sequences, input_ids 2"),
    (dict(input_ids=[[1, 2], [3]], labels=[[1, 2], [3, 4]]), r"labels\[1\] has 2 values, input_ids\[1\] 1"),
])
def test_pack_sequences_refuses_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        pack_sequences(length=4, pad_token_id=0, **bad)


def test_a_pair_mask_of_the_wrong_shape_is_refused():
    config = make_config("relative")
    ids = np.ones((2, 4), dtype=np.int64)
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 4, 5\), expected \(2, 4\) or \(2, 4, 4\)"):
        deberta_pt.DebertaModel(config)(torch.from_numpy(ids), attention_mask=torch.ones(2, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 4, 5\), expected \(2, 4\) or \(2, 4, 4\)"):
        deberta_tf.TFDebertaModel(config)({"input_ids": ids, "attention_mask": np.ones((2, 4, 5), np.int64)})


def test_a_pair_mask_is_refused_where_p2p_scores_depend_on_the_row_index():
    """p2p scores a query with the position query of its index in the row: packed, a sequence would not get
    what it gets alone."""
    config = make_config("p2p")
    seqs = sequences(config)
    packed, _ = pack_sequences(seqs, ROW, config.pad_token_id)
    message = r"attention_mask of shape \(3, 12, 12\) pairs queries with keys, which this model \(pos_att_type " \
              r"c2p\|p2c\|p2p\) cannot take"
    with pytest.raises(ValueError, match=message):
        deberta_pt.DebertaModel(config)(**torch_inputs(packed))
    with pytest.raises(ValueError, match=message):
        deberta_tf.TFDebertaModel(config)(packed)
    deberta_pt.DebertaModel(config)(**torch_inputs(padded(config, seqs)))  # a (B, L) mask is fine


def pt_model(variant: str, head: str = "Model", **overrides):
    return build_pt(head, make_config(variant, **overrides), seed=1)


@pytest.mark.parametrize("variant", ["relative", "short_span", "both_positions", "c2p", "p2c", "none",
                                     "talking_head", "absolute", "token_types"])
def test_pytorch_packed_rows_give_each_sequence_its_own_outputs(variant):
    """Every hidden state of every token, fused and plain attention; the relative scores in blocks of 3
    (short_span: a span of 4, so sequences of 5 to 9 tokens have distances beyond it). At the padding, where
    nothing is compared with the padded batch, the fused attention gives what the plain one gives."""
    model = pt_model(variant)
    seqs = sequences(model.config)
    types = [[i % 2] * n for i, n in enumerate(LENGTHS)] if model.config.type_vocab_size else None
    fields = {"token_type_ids": types} if types else {}
    packed, places = pack_sequences(seqs, ROW, model.config.pad_token_id, **fields)
    runs = {}
    for implementation in ("sdpa", "eager"):
        for module in model.modules():
            if isinstance(module, deberta_pt.modeling.DisentangledSelfAttention):
                module.relative_block, module.attn_implementation = 3, implementation
        with torch.no_grad():
            got = model(**torch_inputs(packed), output_hidden_states=True)
            want = model(**torch_inputs(padded(model.config, seqs, **fields)), output_hidden_states=True)
        for layer, (g, w) in enumerate(zip(got.hidden_states, want.hidden_states)):
            assert_per_sequence_close(g.numpy(), places, w.numpy(), f"{implementation}: hidden state {layer}")
        runs[implementation] = got.last_hidden_state
    np.testing.assert_allclose(runs["sdpa"], runs["eager"], rtol=RTOL, atol=ATOL)


def test_pytorch_packed_attention_maps_stay_inside_each_sequence():
    model = pt_model("relative")
    seqs = sequences(model.config)
    packed, places = pack_sequences(seqs, ROW, model.config.pad_token_id)
    with torch.no_grad():
        got = model(**torch_inputs(packed), output_attentions=True).attentions
        want = model(**torch_inputs(padded(model.config, seqs)), output_attentions=True).attentions
    for g, w in zip(got, want):
        for index, (row, start, stop) in enumerate(places):
            n = stop - start
            np.testing.assert_allclose(g[row, :, start:stop, start:stop], w[index, :, :n, :n], rtol=RTOL, atol=ATOL)
        block = torch.from_numpy(packed["attention_mask"][:, None].astype(bool)).expand_as(g)
        assert not g[~block].any()


@pytest.mark.parametrize("variant, head", [("relative", "ForMaskedLM"), ("short_span", "ForMaskedLM"),
                                           ("emd", "ForMaskedLM"), ("relative", "ForTokenClassification")])
def test_pytorch_packed_training_step_matches_padded(variant, head):
    """The loss over the labelled tokens and every gradient: the fused attention's pair bias, `RelativeScores`
    and the backward of the attention with a (B, 1, L, L) mask."""
    model = pt_model(variant, head).train()
    seqs = sequences(model.config)
    rng = np.random.default_rng(3)
    limit = model.config.vocab_size if head == "ForMaskedLM" else model.config.num_labels
    labels = [np.where(rng.random(n) < 0.5, rng.integers(0, limit, n), IGNORE_INDEX).tolist() for n in LENGTHS]
    runs = []
    for batch in (pack_sequences(seqs, ROW, model.config.pad_token_id, labels=labels)[0],
                  padded(model.config, seqs, labels=labels)):
        model.zero_grad()
        loss = model(**torch_inputs(batch)).loss
        loss.backward()
        runs.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (packed_loss, packed_grads), (padded_loss, padded_grads) = runs
    assert packed_loss == pytest.approx(padded_loss, rel=RTOL, abs=ATOL)
    assert packed_grads.keys() == padded_grads.keys()
    for name, grad in packed_grads.items():
        np.testing.assert_allclose(grad, padded_grads[name], rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("variant", ["relative", "short_span", "both_positions", "emd"])
def test_keras_packed_rows_match_pytorch_and_the_padded_batch(variant, tmp_path):
    """Eagerly, in a graph, under XLA and attending in blocks of 3 queries (`blocked_attention`): the Keras model
    on the packed rows gives, per sequence, the PyTorch model's outputs on the padded batch."""
    from test_equivalence import set_query_block

    model = pt_model(variant, "ForMaskedLM")
    model.save_pretrained(tmp_path)
    tf_model = deberta_tf.TFDebertaForMaskedLM.from_pretrained(tmp_path)
    seqs = sequences(model.config)
    packed, places = pack_sequences(seqs, ROW, model.config.pad_token_id)
    with torch.no_grad():
        want = model(**torch_inputs(padded(model.config, seqs)), output_hidden_states=True)
    runs = {
        "eager": lambda batch: tf_model(batch, output_hidden_states=True),
        "graph": tf.function(lambda batch: tf_model(batch, output_hidden_states=True)),
        "xla": tf.function(lambda batch: tf_model(batch, output_hidden_states=True), jit_compile=True),
    }
    try:
        for blocks in (False, True):
            if blocks:
                set_query_block(tf_model, 3, 0)
            for name, run in runs.items():
                got = run(packed)
                what = f"{name}{' in blocks' if blocks else ''}"
                assert_per_sequence_close(got.logits.numpy(), places, want.logits.numpy(), f"{what}: logits")
                for layer, (g, w) in enumerate(zip(got.hidden_states, want.hidden_states)):
                    assert_per_sequence_close(g.numpy(), places, w.numpy(), f"{what}: hidden state {layer}")
    finally:
        set_query_block(tf_model, deberta_tf.modeling.QUERY_BLOCK, deberta_tf.modeling.BLOCKED_SCORES_BYTES)


@pytest.mark.parametrize("variant", ["relative", "short_span"])
def test_keras_packed_training_step_matches_padded(variant, tmp_path):
    """The masked-LM loss and every gradient, packed against padded, in training mode (dropout is 0)."""
    model = pt_model(variant, "ForMaskedLM")
    model.save_pretrained(tmp_path)
    tf_model = deberta_tf.TFDebertaForMaskedLM.from_pretrained(tmp_path)
    seqs = sequences(model.config)
    rng = np.random.default_rng(3)
    labels = [np.where(rng.random(n) < 0.5, rng.integers(0, model.config.vocab_size, n), IGNORE_INDEX).tolist()
              for n in LENGTHS]
    runs = []
    for batch in (pack_sequences(seqs, ROW, model.config.pad_token_id, labels=labels)[0],
                  padded(model.config, seqs, labels=labels)):
        with tf.GradientTape() as tape:
            loss = tf_model(batch, training=True).loss
        runs.append((float(loss), tape.gradient(loss, tf_model.trainable_weights)))
    (packed_loss, packed_grads), (padded_loss, padded_grads) = runs
    assert packed_loss == pytest.approx(padded_loss, rel=RTOL, abs=ATOL)
    for weight, got, want in zip(tf_model.trainable_weights, packed_grads, padded_grads):
        np.testing.assert_allclose(tf.convert_to_tensor(got), tf.convert_to_tensor(want), rtol=RTOL, atol=ATOL,
                                   err_msg=weight.path)
