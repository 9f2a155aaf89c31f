import json

import pytest

from deberta_common import ConfigError, DebertaConfig


def test_defaults_are_the_reference_ones():
    c = DebertaConfig()
    assert (c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (
        50265, 768, 12, 12, 3072)
    assert c.hidden_act == "gelu" and c.layer_norm_eps == 1e-7 and c.type_vocab_size == 0
    assert c.relative_attention is False and c.max_relative_positions == -1 and c.position_biased_input is True
    assert c.pos_att_type == [] and c.pooler_hidden_size == 768 and c.embedding_size == 768
    assert c.legacy is True and c.model_type == "deberta" and c.num_labels == 2
    assert c.attention_span == 512  # max_relative_positions < 1 falls back to max_position_embeddings


@pytest.mark.parametrize(
    "value, parsed, scale",
    [
        (None, [], 1),
        ("c2p|p2c", ["c2p", "p2c"], 3),
        ("C2P|P2C", ["c2p", "p2c"], 3),
        ("None", ["none"], 2),  # the string "None" counts in the scale: sqrt(2d), as real checkpoints expect
        (["p2c"], ["p2c"], 2),
        ("p2c|c2p|p2p", ["p2c", "c2p", "p2p"], 4),
    ],
)
def test_pos_att_type_parsing_and_scale(value, parsed, scale):
    c = DebertaConfig(pos_att_type=value)
    assert c.pos_att_type == parsed
    assert c.scale_factor == scale


def test_round_trip_keeps_unknown_keys(tmp_path):
    # A config.json as the established tools write it for microsoft/deberta-base, plus fields they add.
    data = {
        "model_type": "deberta", "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
        "max_position_embeddings": 512, "relative_attention": True, "position_buckets": 256,
        "pos_att_type": "c2p|p2c", "layer_norm_eps": 1e-7, "max_relative_positions": -1,
        "position_biased_input": False, "num_attention_heads": 12, "num_hidden_layers": 12,
        "type_vocab_size": 0, "vocab_size": 50265, "transformers_version": "4.40.0", "torch_dtype": "float32",
        "id2label": {"0": "NEG", "1": "POS"}, "label2id": {"NEG": 0, "POS": 1},
    }
    (tmp_path / "config.json").write_text(json.dumps(data))
    c = DebertaConfig.from_pretrained(tmp_path)
    assert c.position_buckets == 256 and c.transformers_version == "4.40.0"
    assert c.pos_att_type == ["c2p", "p2c"] and c.id2label == {0: "NEG", 1: "POS"} and c.num_labels == 2
    out = tmp_path / "out"
    c.save_pretrained(out)
    again = DebertaConfig.from_pretrained(out)
    assert again == c
    written = json.loads((out / "config.json").read_text())
    assert written["position_buckets"] == 256 and written["id2label"] == {"0": "NEG", "1": "POS"}
    assert written["pos_att_type"] == ["c2p", "p2c"]
    assert json.loads(c.to_json_string()) == written


def test_null_pos_att_type_round_trips_as_null(tmp_path):
    c = DebertaConfig(pos_att_type=None)
    c.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["pos_att_type"] is None
    assert DebertaConfig.from_pretrained(tmp_path).scale_factor == 1


def test_num_labels_builds_label_maps():
    c = DebertaConfig(num_labels=3)
    assert c.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"} and c.label2id["LABEL_2"] == 2
    c.num_labels = 1
    assert c.num_labels == 1


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(hidden_size=30, num_attention_heads=4), ["hidden_size (30)", "num_attention_heads (4)"]),
        (dict(pos_att_type="c2p|q2q"), ["pos_att_type", "q2q"]),
        (dict(hidden_act="gelu_magic"), ["hidden_act", "gelu_magic"]),
        (dict(pooler_hidden_act="nope"), ["pooler_hidden_act", "nope"]),
        (dict(num_hidden_layers=-1), ["num_hidden_layers", "-1"]),
        (dict(vocab_size=0), ["vocab_size", "0"]),
        (dict(hidden_size="768"), ["hidden_size", "'768'"]),
        (dict(hidden_dropout_prob=1.5), ["hidden_dropout_prob", "1.5"]),
        (dict(relative_attention="yes"), ["relative_attention", "'yes'"]),
        (dict(problem_type="ranking"), ["problem_type", "ranking"]),
        (dict(pos_att_type=3), ["pos_att_type", "3"]),
        (dict(num_labels=3, id2label={0: "a"}), ["num_labels=3", "id2label"]),
        (dict(pad_token_id=100, vocab_size=50), ["pad_token_id", "100"]),
    ],
)
def test_validation_errors_name_the_field(kwargs, words):
    with pytest.raises(ConfigError) as err:
        DebertaConfig(**kwargs)
    for word in words:
        assert word in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        DebertaConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        DebertaConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        DebertaConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 33}')
    with pytest.raises(ConfigError, match=r"config.json: hidden_size \(33\)"):
        DebertaConfig.from_pretrained(tmp_path)
