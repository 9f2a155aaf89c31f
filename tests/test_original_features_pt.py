"""What the original DeBERTa has and other ports dropped: EMD, p2p, multiple choice (PyTorch side)."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

import deberta_pt
from variants import build_pt, make_batch, make_config

EMD = dict(legacy=False, position_biased_input=False)


def test_emd_written_out_from_the_paper():
    """Queries = absolute position embeddings + the states entering the last layer (H); keys and values
    from H; the last layer applied twice; then the original head scores against the word embeddings."""
    config = make_config("absolute", num_hidden_layers=2, num_attention_heads=1, **EMD)
    assert config.enhanced_mask_decoder
    model = build_pt("ForMaskedLM", config, std=0.1)
    ids = torch.tensor([[5, 17, 42, 8, 3, 60]])
    eps = config.layer_norm_eps
    hidden = model.deberta(input_ids=ids, output_hidden_states=True).hidden_states
    H = hidden[-2][0]  # (L, hidden): the input of the last layer
    layer = model.deberta.encoder.layer[-1]
    att = layer.attention.self
    w = att.in_proj.weight  # one head: rows q, k, v
    d = config.hidden_size
    Wq, Wk, Wv = w[:d], w[d : 2 * d], w[2 * d :]

    def ln(x, mod):
        return F.layer_norm(x, (x.shape[-1],), mod.weight, mod.bias, eps)

    query = model.deberta.embeddings.position_embeddings.weight[: ids.shape[1]] + H
    for _ in range(2):
        q = query @ Wq.T + att.q_bias
        k = H @ Wk.T
        v = H @ Wv.T + att.v_bias
        probs = torch.softmax(q @ k.T / math.sqrt(d * 1), dim=-1)  # pos_att_type [] -> scale factor 1
        out = ln(probs @ v @ layer.attention.output.dense.weight.T + layer.attention.output.dense.bias + query,
                 layer.attention.output.LayerNorm)
        ffn = F.gelu(out @ layer.intermediate.dense.weight.T + layer.intermediate.dense.bias)
        query = ln(ffn @ layer.output.dense.weight.T + layer.output.dense.bias + out, layer.output.LayerNorm)
    head = model.lm_predictions.lm_head
    h = ln(F.gelu(query @ head.dense.weight.T + head.dense.bias), head.LayerNorm)
    expected = h @ model.deberta.embeddings.word_embeddings.weight.T + head.bias
    torch.testing.assert_close(model(input_ids=ids).logits[0], expected, rtol=0, atol=1e-5)


def test_emd_with_relative_attention_and_padding():
    config = make_config("relative", **EMD)
    model = build_pt("ForMaskedLM", config)
    batch = {k: torch.from_numpy(v) for k, v in make_batch(config).items()}
    together = model(**batch).logits
    for row in range(3):
        n = int(batch["attention_mask"][row].sum())
        alone = model(**{k: v[row : row + 1, :n] for k, v in batch.items()}).logits
        torch.testing.assert_close(together[row, :n], alone[0], rtol=0, atol=1e-5)
    # the decoder does change the predictions: the plain head on the last layer differs
    plain = model.lm_predictions(model.deberta(**batch).last_hidden_state, model.deberta.embeddings.word_embeddings.weight)
    assert (plain - together).abs().max() > 1e-2


def test_original_checkpoint_without_legacy_key_uses_its_head(tmp_path):
    config = make_config("relative", **EMD)
    model = build_pt("ForMaskedLM", config)
    model.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    del data["legacy"]  # as the original checkpoints' config.json
    (tmp_path / "config.json").write_text(json.dumps(data))
    loaded, info = deberta_pt.DebertaForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert loaded.config.legacy is False and info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert "deberta.embeddings.position_embeddings.weight" in loaded.state_dict()
    ids = torch.tensor([[3, 4, 5, 6]])
    torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)


def test_p2p_written_out():
    config = make_config("relative", num_hidden_layers=1, max_relative_positions=3, pos_att_type="c2p|p2c|p2p")
    assert config.scale_factor == 4
    model = build_pt("Model", config, std=0.1)
    att = model.encoder.layer[0].attention.self
    x = torch.randn(1, 5, config.hidden_size)
    H, d = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    w = att.in_proj.weight.view(H, 3 * d, config.hidden_size)
    rel = model.encoder.rel_embeddings.weight  # (6, hidden): R = 3, span 3
    kr = (rel @ att.pos_proj.weight.T).view(6, H, d)
    qr = (rel @ att.pos_q_proj.weight.T + att.pos_q_proj.bias).view(6, H, d)
    scale = math.sqrt(d * 4)
    expected = torch.zeros(1, 5, config.hidden_size)
    for h in range(H):
        q = x[0] @ w[h, :d].T + att.q_bias.view(H, d)[h]
        k = x[0] @ w[h, d : 2 * d].T
        v = x[0] @ w[h, 2 * d :].T + att.v_bias.view(H, d)[h]
        scores = torch.zeros(5, 5)
        for i in range(5):
            for j in range(5):
                r = min(max(i - j + 3, 0), 5)  # row of distance i - j
                ri = min(i + 3, 5)  # row of distance i: the position query of query i
                scores[i, j] = (q[i] @ k[j] + q[i] @ kr[r, h] + k[j] @ qr[r, h] + qr[ri, h] @ kr[r, h]) / scale
        expected[0, :, h * d : (h + 1) * d] = torch.softmax(scores, -1) @ v
    rows = deberta_pt.modeling.build_relative_position(5, 3, 3, x.device)
    got, _ = att(x, torch.ones(1, 1, 5, 5, dtype=torch.bool), rel_embeddings=rel[rows])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_multiple_choice():
    config = make_config("relative")
    model = build_pt("ForMultipleChoice", config)
    batch = {k: torch.from_numpy(v) for k, v in make_batch(config, batch=6).items()}
    choices = {k: v.view(2, 3, -1) for k, v in batch.items()}
    labels = torch.tensor([2, 0])
    out = model(**choices, labels=labels, output_hidden_states=True)
    assert out.logits.shape == (2, 3)
    assert out.hidden_states[0].shape == (6, 11, config.hidden_size)
    # each choice's score is the pooled classifier score of that sequence alone
    pooled = model.pooler(model.deberta(**batch).last_hidden_state)
    expected = model.classifier(pooled).view(2, 3)
    torch.testing.assert_close(out.logits, expected, rtol=0, atol=1e-5)
    logp = torch.log_softmax(expected, -1)
    torch.testing.assert_close(out.loss, -(logp[0, 2] + logp[1, 0]) / 2)
    with pytest.raises(ValueError, match="choices"):
        model(input_ids=batch["input_ids"])


def test_multiple_choice_round_trip(tmp_path):
    from conversion.convert import convert

    model = build_pt("ForMultipleChoice", make_config("relative"))
    model.save_pretrained(tmp_path / "pt")
    convert(str(tmp_path / "pt"), str(tmp_path / "tf"), to="tf", verify_outputs=False)
    convert(str(tmp_path / "tf"), str(tmp_path / "back"), to="pt", verify_outputs=False)
    back = deberta_pt.DebertaForMultipleChoice.from_pretrained(tmp_path / "back")
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), name
