"""The bad-input catalogue: every case raises an exception of a specific type whose message names the
file, key, field or value, and nothing a user owns is left damaged or half-written."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

import deberta_pt
from conversion.cli import main as convert_main
from deberta_common import ConfigError, DebertaConfig, DebertaTokenizer, DebertaTokenizerFast, TokenizerError
from deberta_common.checkpoints import CheckpointError, write_safetensors
from variants import make_config

GPT2 = os.path.join(os.path.dirname(__file__), "fixtures", "gpt2")


@pytest.fixture
def ckpt(tmp_path):
    """A tiny saved DebertaModel: (folder, model)."""
    model = deberta_pt.DebertaModel(make_config("absolute", type_vocab_size=2)).eval()
    model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt", model


def state_of(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


def rewrite(folder, state):
    write_safetensors(str(folder / "model.safetensors"), [(k, v, str(v.dtype)) for k, v in state.items()])


def load(folder):
    return deberta_pt.DebertaModel.from_pretrained(folder)


# ----------------------------------------------------------------------------- config.json
def case_config_missing(ckpt):
    (ckpt[0] / "config.json").unlink()
    load(ckpt[0])


def case_config_not_json(ckpt):
    (ckpt[0] / "config.json").write_text("{'single': 'quotes'}")
    load(ckpt[0])


def case_config_wrong_type(ckpt):
    data = json.loads((ckpt[0] / "config.json").read_text())
    data["num_hidden_layers"] = "two"
    (ckpt[0] / "config.json").write_text(json.dumps(data))
    load(ckpt[0])


def case_config_heads(ckpt):
    DebertaConfig(hidden_size=100, num_attention_heads=12)


def case_config_activation(ckpt):
    DebertaConfig(hidden_act="swiglu")


def case_config_pos_att_type(ckpt):
    DebertaConfig(pos_att_type="c2p|x2y")


# ----------------------------------------------------------------------------- weight files
def case_weights_missing(ckpt):
    (ckpt[0] / "model.safetensors").unlink()
    load(ckpt[0])


def case_weights_empty(ckpt):
    (ckpt[0] / "model.safetensors").write_bytes(b"")
    load(ckpt[0])


def case_weights_truncated(ckpt):
    path = ckpt[0] / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-64])
    load(ckpt[0])


def case_weights_not_safetensors(ckpt):
    (ckpt[0] / "model.safetensors").write_bytes(b"PK\x03\x04 this is a zip header, not safetensors" * 4)
    load(ckpt[0])


def case_weights_not_zip(ckpt):
    (ckpt[0] / "model.safetensors").unlink()
    (ckpt[0] / "pytorch_model.bin").write_bytes(b"\x00" * 100)
    load(ckpt[0])


def case_weights_not_h5(ckpt):
    (ckpt[0] / "model.safetensors").unlink()
    (ckpt[0] / "tf_model.h5").write_text("not hdf5")
    load(ckpt[0])


def case_weight_wrong_shape(ckpt):
    state = state_of(ckpt[1])
    state["encoder.layer.0.intermediate.dense.weight"] = np.zeros((3, 3), np.float32)
    rewrite(ckpt[0], state)
    load(ckpt[0])


def write_int_bias(ckpt):
    state = state_of(ckpt[1])
    state["encoder.layer.0.intermediate.dense.bias"] = np.zeros(37, np.int32)
    rewrite(ckpt[0], state)


def case_weight_wrong_dtype(ckpt):
    write_int_bias(ckpt)
    load(ckpt[0])


def case_shard_missing(ckpt):
    ckpt[1].save_pretrained(ckpt[0], max_shard_size="20KB")
    index = json.loads((ckpt[0] / "model.safetensors.index.json").read_text())
    (ckpt[0] / sorted(set(index["weight_map"].values()))[1]).unlink()
    load(ckpt[0])


def case_missing_tensor_conversion(ckpt):
    state = state_of(ckpt[1])
    del state["encoder.layer.1.attention.self.in_proj.weight"]
    rewrite(ckpt[0], state)
    if convert_main([str(ckpt[0]), str(ckpt[0].parent / "out"), "--to", "tf"]) != 0:
        raise RuntimeError("conversion failed")


# ----------------------------------------------------------------------------- tokenizer files
def tokenizer_folder(ckpt):
    folder = ckpt[0].parent / "tok"
    shutil.copytree(GPT2, folder)
    return folder


def case_tokenizer_no_vocab(ckpt):
    folder = tokenizer_folder(ckpt)
    (folder / "vocab.json").unlink()
    DebertaTokenizer.from_pretrained(folder)


def case_tokenizer_no_merges(ckpt):
    folder = tokenizer_folder(ckpt)
    (folder / "merges.txt").unlink()
    DebertaTokenizerFast.from_pretrained(folder)


def case_tokenizer_bad_merges_line(ckpt):
    folder = tokenizer_folder(ckpt)
    lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    lines[5] = "onlyonetoken"
    (folder / "merges.txt").write_text("\n".join(lines), encoding="utf-8")
    DebertaTokenizer.from_pretrained(folder)


def case_tokenizer_vocab_not_dict(ckpt):
    folder = tokenizer_folder(ckpt)
    (folder / "vocab.json").write_text("[1, 2, 3]")
    DebertaTokenizer.from_pretrained(folder)


def case_text_bytes(ckpt):
    DebertaTokenizer.from_pretrained(GPT2)(b"bytes are not text")


def case_text_none(ckpt):
    DebertaTokenizerFast.from_pretrained(GPT2)(None)


# ----------------------------------------------------------------------------- model inputs
def call(ckpt, **kwargs):
    ckpt[1](**kwargs)


def case_ids_too_large(ckpt):
    call(ckpt, input_ids=torch.tensor([[1, 99]]))


def case_ids_negative(ckpt):
    call(ckpt, input_ids=torch.tensor([[1, -1]]))


def case_token_types_too_large(ckpt):
    call(ckpt, input_ids=torch.tensor([[1, 2]]), token_type_ids=torch.tensor([[0, 2]]))


def case_too_long(ckpt):
    call(ckpt, input_ids=torch.ones(1, 65, dtype=torch.long))


def case_mask_shape(ckpt):
    call(ckpt, input_ids=torch.ones(2, 4, dtype=torch.long), attention_mask=torch.ones(2, 5))


def case_mask_values(ckpt):
    call(ckpt, input_ids=torch.ones(1, 3, dtype=torch.long), attention_mask=torch.tensor([[1.0, 0.5, 0.0]]))


def case_empty_batch(ckpt):
    call(ckpt, input_ids=torch.ones(0, 4, dtype=torch.long))


def case_zero_length(ckpt):
    call(ckpt, input_ids=torch.ones(2, 0, dtype=torch.long))


def case_float_ids(ckpt):
    call(ckpt, input_ids=torch.tensor([[1.0, 2.0]]))


def call_tf(ckpt, **kwargs):
    import deberta_tf

    deberta_tf.TFDebertaModel.from_pretrained(ckpt[0])(kwargs)


def case_tf_ids_too_large(ckpt):
    call_tf(ckpt, input_ids=np.array([[1, 99]]))


def case_tf_mask_shape(ckpt):
    call_tf(ckpt, input_ids=np.ones((2, 4), np.int64), attention_mask=np.ones((2, 5), np.int64))


def case_tf_mask_values(ckpt):
    call_tf(ckpt, input_ids=np.ones((1, 3), np.int64), attention_mask=np.array([[1.0, 0.5, 0.0]]))


def case_tf_empty_batch(ckpt):
    call_tf(ckpt, input_ids=np.ones((0, 4), np.int64))


def case_tf_float_ids(ckpt):
    call_tf(ckpt, input_ids=np.array([[1.0, 2.0]]))


def case_tf_weight_wrong_dtype(ckpt):
    import deberta_tf

    write_int_bias(ckpt)
    deberta_tf.TFDebertaModel.from_pretrained(ckpt[0])


# ----------------------------------------------------------------------------- deberta-convert
def convert_or_raise(*args):
    if convert_main([str(a) for a in args]) != 0:
        raise RuntimeError("deberta-convert exited with an error")


def case_convert_into_non_empty(ckpt):
    (ckpt[0].parent / "out").mkdir()
    (ckpt[0].parent / "out" / "mine.txt").write_text("keep me")
    convert_or_raise(ckpt[0], ckpt[0].parent / "out", "--to", "tf")


def case_convert_into_read_only_place(ckpt):
    convert_or_raise(ckpt[0], "/sys/deberta-out", "--to", "tf")


def case_convert_conflicting_files(ckpt):
    state = state_of(ckpt[1])
    state["embeddings.LayerNorm.bias"] = state["embeddings.LayerNorm.bias"] + 1
    import torch as _torch

    _torch.save({k: _torch.from_numpy(v) for k, v in state.items()}, ckpt[0] / "pytorch_model.bin")
    convert_or_raise(ckpt[0], ckpt[0].parent / "out", "--to", "tf")


CASES = [
    (case_config_missing, FileNotFoundError, r"no config.json at .*ckpt/config.json"),
    (case_config_not_json, ConfigError, r"config.json is not valid JSON"),
    (case_config_wrong_type, ConfigError, r"config.json: num_hidden_layers: expected an integer, got 'two'"),
    (case_config_heads, ConfigError, r"hidden_size \(100\) is not divisible by num_attention_heads \(12\)"),
    (case_config_activation, ConfigError, r"hidden_act: unknown activation 'swiglu'"),
    (case_config_pos_att_type, ConfigError, r"pos_att_type: unknown entries \['x2y'\]"),
    (case_weights_missing, FileNotFoundError, r"no weight file in .*ckpt"),
    (case_weights_empty, CheckpointError, r"model.safetensors: not a safetensors file \(only 0 bytes\)"),
    (case_weights_truncated, CheckpointError, r"model.safetensors: truncated: tensor '.*' ends at byte"),
    (case_weights_not_safetensors, CheckpointError, r"model.safetensors: not a safetensors file or truncated"),
    (case_weights_not_zip, CheckpointError, r"pytorch_model.bin: not a readable PyTorch checkpoint"),
    (case_weights_not_h5, CheckpointError, r"tf_model.h5: not a readable HDF5 file"),
    (case_weight_wrong_shape, CheckpointError,
     r"'encoder.layer.0.intermediate.dense.weight' has shape \(3, 3\) in the checkpoint but \(37, 32\)"),
    (case_weight_wrong_dtype, CheckpointError,
     r"'encoder.layer.0.intermediate.dense.bias' is stored as int32, not as floating-point values"),
    (case_shard_missing, CheckpointError, r"names shard model-00002-of-000\d\d.safetensors, which is missing"),
    (case_missing_tensor_conversion, RuntimeError, r"conversion failed"),
    (case_tokenizer_no_vocab, TokenizerError, r"vocab.json"),
    (case_tokenizer_no_merges, TokenizerError, r"merges.txt"),
    (case_tokenizer_bad_merges_line, TokenizerError, r"merges.txt, line 6: expected two tokens"),
    (case_tokenizer_vocab_not_dict, TokenizerError, r"vocab.json: expected a JSON object"),
    (case_text_bytes, TokenizerError, r"bytes"),
    (case_text_none, TokenizerError, r"None"),
    (case_ids_too_large, ValueError, r"input_ids must be in \[0, 99\), got values in \[1, 99\]"),
    (case_ids_negative, ValueError, r"input_ids must be in \[0, 99\), got values in \[-1, 1\]"),
    (case_token_types_too_large, ValueError, r"token_type_ids must be in \[0, 2\), got values in \[0, 2\]"),
    (case_too_long, ValueError, r"sequence length 65 exceeds max_position_embeddings \(64\)"),
    (case_mask_shape, ValueError, r"attention_mask has shape \(2, 5\), expected \(2, 4\)"),
    (case_mask_values, ValueError, r"attention_mask must hold only 0 and 1, got 0.5"),
    (case_empty_batch, ValueError, r"empty input: input_ids has shape \(0, 4\)"),
    (case_zero_length, ValueError, r"empty input: input_ids has shape \(2, 0\)"),
    (case_float_ids, TypeError, r"input_ids must be integers, got torch.float32"),
    (case_tf_ids_too_large, ValueError, r"input_ids must be in \[0, 99\), got values in \[1, 99\]"),
    (case_tf_mask_shape, ValueError, r"attention_mask has shape \(2, 5\), expected \(2, 4\)"),
    (case_tf_mask_values, ValueError, r"attention_mask must hold only 0 and 1, got 0.5"),
    (case_tf_empty_batch, ValueError, r"empty input: input_ids has shape \(0, 4\)"),
    (case_tf_float_ids, TypeError, r"input_ids must be integers, got float"),
    (case_tf_weight_wrong_dtype, CheckpointError,
     r"'encoder.layer.0.intermediate.dense.bias' is stored as int32, not as floating-point values"),
    (case_convert_into_non_empty, RuntimeError, r"deberta-convert exited with an error"),
    (case_convert_into_read_only_place, RuntimeError, r"deberta-convert exited with an error"),
    (case_convert_conflicting_files, RuntimeError, r"deberta-convert exited with an error"),
]

# What deberta-convert prints for the cases that go through it.
CONVERT_MESSAGES = {
    case_missing_tensor_conversion: "the checkpoint lacks weights: ['encoder.layer.1.attention.self.in_proj.weight']",
    case_convert_into_non_empty: "exists and is not empty; pass --overwrite",
    case_convert_into_read_only_place: "cannot write /sys/deberta-out: Operation not permitted",
    case_convert_conflicting_files: "model.safetensors and pytorch_model.bin disagree on 'embeddings.LayerNorm.bias'",
}


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case, error, message", CASES, ids=[c[0].__name__[5:] for c in CASES])
def test_bad_input(ckpt, capsys, case, error, message):
    with pytest.raises(error, match=message):
        case(ckpt)
    if case in CONVERT_MESSAGES:
        assert CONVERT_MESSAGES[case] in capsys.readouterr().err
        leftovers = [p for p in os.listdir(ckpt[0].parent) if p.startswith(".out")]
        assert leftovers == []  # no half-written destination beside it
    if case is case_convert_into_non_empty:
        assert (ckpt[0].parent / "out" / "mine.txt").read_text() == "keep me"
