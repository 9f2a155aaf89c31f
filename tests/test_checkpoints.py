import json
import struct

import h5py
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as st_load_numpy
from safetensors.numpy import save_file as st_save_numpy
from safetensors.torch import load_file as st_load_torch
from safetensors.torch import save_file as st_save_torch

import deberta_pt
from deberta_common import checkpoints, weight_names
from deberta_common.checkpoints import CheckpointError, CheckpointReader
from variants import VARIANTS, make_config


def test_our_safetensors_files_read_by_the_safetensors_library(tmp_path):
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2], dtype=np.int64),
              "c": np.ones((2, 2), dtype=np.float16)}
    checkpoints.write_safetensors(str(tmp_path / "x.safetensors"), [(k, v, str(v.dtype)) for k, v in arrays.items()])
    back = st_load_numpy(str(tmp_path / "x.safetensors"))
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v)
    bf16 = torch.randn(5, 3).to(torch.bfloat16)
    bits = bf16.view(torch.int16).numpy().view(np.uint16)
    checkpoints.write_safetensors(str(tmp_path / "y.safetensors"), [("w", bits, "bfloat16")])
    assert torch.equal(st_load_torch(str(tmp_path / "y.safetensors"))["w"], bf16)


def test_safetensors_library_files_read_by_us(tmp_path):
    st_save_torch({"w": torch.randn(4, 3).to(torch.bfloat16), "v": torch.randn(7)}, str(tmp_path / "model.safetensors"))
    reader = CheckpointReader(str(tmp_path))
    ref = st_load_torch(str(tmp_path / "model.safetensors"))
    assert reader.dtype("w") == "bfloat16" and reader.shape("w") == (4, 3)
    assert np.array_equal(reader.numpy("w"), ref["w"].float().numpy())
    assert np.array_equal(reader.numpy("v"), ref["v"].numpy())


def test_bf16_conversions_match_torch():
    values = torch.randn(1000) * 100
    ours = checkpoints.float32_to_bf16_bits(values.numpy())
    assert np.array_equal(ours, values.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16))
    back = checkpoints.bf16_bits_to_float32(ours)
    assert np.array_equal(back, values.to(torch.bfloat16).float().numpy())


def test_truncated_and_foreign_files_are_named(tmp_path):
    st_save_numpy({"w": np.zeros((100, 10), dtype=np.float32)}, str(tmp_path / "model.safetensors"))
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[:-50])
    with pytest.raises(CheckpointError, match=r"model.safetensors: truncated: tensor 'w'"):
        CheckpointReader(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"hello")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        CheckpointReader(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(CheckpointError, match="unreadable header"):
        CheckpointReader(str(tmp_path))
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="pytorch_model.bin: not a readable PyTorch checkpoint"):
        CheckpointReader(str(tmp_path))
    (tmp_path / "pytorch_model.bin").unlink()
    (tmp_path / "tf_model.h5").write_bytes(b"\x89HDF junk")
    with pytest.raises(CheckpointError, match="tf_model.h5: not a readable HDF5 file"):
        CheckpointReader(str(tmp_path))


def test_index_naming_a_missing_shard(tmp_path):
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors"}}
    st_save_numpy({"a": np.zeros(2, dtype=np.float32)}, str(tmp_path / "model-00001-of-00002.safetensors"))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors, which is missing"):
        CheckpointReader(str(tmp_path))


def test_parse_size_and_plan_shards():
    assert checkpoints.parse_size("2GB") == 2 * 10**9
    assert checkpoints.parse_size("500MB") == 500 * 10**6
    assert checkpoints.parse_size("10KiB") == 10240
    assert checkpoints.parse_size(123) == 123
    with pytest.raises(ValueError, match="not a size"):
        checkpoints.parse_size("lots")
    plan = checkpoints.plan_shards({"a": 6, "b": 6, "c": 20, "d": 1}, 10)
    assert plan == [["a"], ["b"], ["c"], ["d"]]
    assert checkpoints.plan_shards({"a": 3, "b": 3, "c": 3}, 10) == [["a", "b", "c"]]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_weight_name_maps_both_ways(variant):
    for head in ("ForMaskedLM", "ForSequenceClassification", "ForQuestionAnswering"):
        model = getattr(deberta_pt, "Deberta" + head)(make_config(variant))
        for name, tensor in model.state_dict().items():
            if name in weight_names.TIED_PT_KEYS:
                with pytest.raises(weight_names.WeightNameError, match="tied"):
                    weight_names.pt_to_tf(name)
                continue
            tf_name, transposed = weight_names.pt_to_tf(name)
            assert "." not in tf_name.replace("rel_embeddings.weight", "").replace("layer_._", "")
            assert transposed == (tf_name.endswith("/kernel"))
            assert weight_names.tf_to_pt(tf_name) == (name, transposed)
            prefix = weight_names.TF_MODEL_PREFIX["Deberta" + head]
            assert weight_names.tf_to_pt(f"{prefix}/{tf_name}:0") == (name, transposed)


def test_known_tensorflow_names():
    """The names the established TensorFlow DeBERTa checkpoints use."""
    cases = {
        "deberta.embeddings.word_embeddings.weight": ("deberta/embeddings/word_embeddings/weight", False),
        "deberta.embeddings.position_embeddings.weight": ("deberta/embeddings/position_embeddings/embeddings", False),
        "deberta.embeddings.LayerNorm.weight": ("deberta/embeddings/LayerNorm/gamma", False),
        "deberta.encoder.layer.0.attention.self.in_proj.weight":
            ("deberta/encoder/layer_._0/attention/self/in_proj/kernel", True),
        "deberta.encoder.layer.11.attention.self.q_bias": ("deberta/encoder/layer_._11/attention/self/q_bias", False),
        "deberta.encoder.rel_embeddings.weight": ("deberta/encoder/rel_embeddings.weight", False),
        "cls.predictions.transform.LayerNorm.bias": ("cls/predictions/transform/LayerNorm/beta", False),
        "cls.predictions.bias": ("cls/predictions/bias", False),
        "pooler.dense.weight": ("pooler/dense/kernel", True),
        "qa_outputs.bias": ("qa_outputs/bias", False),
    }
    for pt, tf in cases.items():
        assert weight_names.pt_to_tf(pt) == tf
    with pytest.raises(weight_names.WeightNameError, match="not a TensorFlow DeBERTa weight name"):
        weight_names.tf_to_pt("deberta/encoder/mystery/thing")


def test_tf_h5_layout_and_reading_back(tmp_path):
    model = deberta_pt.DebertaForSequenceClassification(make_config("relative"))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    pairs = []
    for name, value in state.items():
        tf_name, transposed = weight_names.pt_to_tf(name)
        pairs.append((tf_name, value.T if transposed else value))
    path = tmp_path / "tf_model.h5"
    checkpoints.write_tf_h5(str(path), pairs, "DebertaForSequenceClassification")
    with h5py.File(path, "r") as f:
        assert [x.decode() for x in f.attrs["layer_names"]] == ["deberta", "pooler", "classifier"]
        weights = [x.decode() for x in f["deberta"].attrs["weight_names"]]  # bytes, as Keras 2 writes them
        key = "tf_deberta_for_sequence_classification/deberta/encoder/layer_._0/attention/self/in_proj/kernel:0"
        assert key in weights
        assert f["deberta"][key].shape == (32, 96)
    reader = CheckpointReader(str(tmp_path))
    assert reader.format == "h5" and sorted(reader.keys()) == sorted(state)
    for name, value in state.items():
        assert np.array_equal(reader.numpy(name), value), name
    # a PyTorch model loads it directly
    loaded = deberta_pt.DebertaForSequenceClassification.from_pretrained(
        tmp_path, config=make_config("relative"))
    for name, value in loaded.state_dict().items():
        assert np.array_equal(value.numpy(), state[name])


def test_long_name_lists_are_split_as_keras_does(tmp_path):
    names = [f"deberta/encoder/layer_._{i}/attention/self/in_proj/kernel" for i in range(1000)]
    path = str(tmp_path / "tf_model.h5")
    checkpoints.write_tf_h5(path, [(n, np.zeros((1, 1), np.float32)) for n in names], "DebertaModel")
    with h5py.File(path, "r") as f:
        assert "weight_names" not in f["deberta"].attrs and "weight_names1" in f["deberta"].attrs
        assert checkpoints.read_h5_string_list(f["deberta"], "weight_names") == [
            f"tf_deberta_model/{n}:0" for n in names]
