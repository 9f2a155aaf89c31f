"""deberta-convert end to end on tiny checkpoints: formats, shards, dtypes, round trips and every error case."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import deberta_pt
from conversion.cli import main
from conversion.convert import ConversionError, convert
from deberta_common.checkpoints import CheckpointReader, write_safetensors
from variants import make_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def save_model(folder, head="ForMaskedLM", variant="relative", **kwargs):
    torch.manual_seed(0)
    model = getattr(deberta_pt, "Deberta" + head)(make_config(variant, **kwargs))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    model.save_pretrained(folder)
    return model


def tensors(folder):
    reader = CheckpointReader(str(folder))
    return {k: reader.numpy(k) for k in reader.keys()}


def assert_same_tensors(a, b):
    ta, tb = tensors(a), tensors(b)
    assert sorted(ta) == sorted(tb)
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and np.array_equal(ta[k], tb[k]), k


@pytest.mark.parametrize("head", ["Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
                                  "ForQuestionAnswering"])
def test_pt_to_tf_to_pt_is_bit_exact(tmp_path, head):
    save_model(tmp_path / "src", head)
    assert main([str(tmp_path / "src"), str(tmp_path / "tf"), "--to", "tf"]) == 0
    assert (tmp_path / "tf" / "tf_model.h5").exists()
    assert json.loads((tmp_path / "tf" / "config.json").read_text())["architectures"] == ["Deberta" + head]
    assert main([str(tmp_path / "tf"), str(tmp_path / "back"), "--to", "pt"]) == 0
    assert (tmp_path / "back" / "model.safetensors").exists()
    assert_same_tensors(tmp_path / "src", tmp_path / "back")


def test_tf_to_pt_to_tf_is_bit_exact(tmp_path):
    save_model(tmp_path / "src", "ForSequenceClassification", "token_types")
    convert(str(tmp_path / "src"), str(tmp_path / "tf1"), to="tf", verify_outputs=False)
    convert(str(tmp_path / "tf1"), str(tmp_path / "pt"), to="pt", fmt="bin", verify_outputs=False)
    convert(str(tmp_path / "pt"), str(tmp_path / "tf2"), to="tf", verify_outputs=False)
    assert_same_tensors(tmp_path / "tf1", tmp_path / "tf2")


def test_sharded_every_format(tmp_path, capsys):
    save_model(tmp_path / "src")
    assert main([str(tmp_path / "src"), str(tmp_path / "tf"), "--to", "tf", "--max-shard-size", "30KB"]) == 0
    out = capsys.readouterr().out
    assert "wrote tf_model-00001-of-" in out and "verify logits" in out
    assert (tmp_path / "tf" / "tf_model.h5.index.json").exists() and not (tmp_path / "tf" / "tf_model.h5").exists()
    assert main([str(tmp_path / "tf"), str(tmp_path / "bin"), "--to", "pt", "--format", "bin",
                 "--max-shard-size", "30KB"]) == 0
    assert (tmp_path / "bin" / "pytorch_model.bin.index.json").exists()
    assert main([str(tmp_path / "bin"), str(tmp_path / "st"), "--to", "pt", "--max-shard-size", "30KB"]) == 0
    assert (tmp_path / "st" / "model.safetensors.index.json").exists()
    assert_same_tensors(tmp_path / "src", tmp_path / "st")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtype_cast_and_verification(tmp_path, dtype, capsys):
    save_model(tmp_path / "src")
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--to", "pt", "--dtype", dtype]) == 0
    reader = CheckpointReader(str(tmp_path / "out"))
    assert {reader.dtype(k) for k in reader.keys()} == {dtype}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["torch_dtype"] == dtype
    src = tensors(tmp_path / "src")
    ref_dtype = torch.float16 if dtype == "float16" else torch.bfloat16
    for k, v in tensors(tmp_path / "out").items():
        assert np.array_equal(v, torch.from_numpy(src[k]).to(ref_dtype).float().numpy()), k
    assert "verify logits" in capsys.readouterr().out


def test_bfloat16_cannot_go_into_h5(tmp_path, capsys):
    save_model(tmp_path / "src")
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--to", "tf", "--dtype", "bfloat16"]) == 1
    assert "bfloat16" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_tokenizer_files_travel(tmp_path):
    save_model(tmp_path / "src")
    (tmp_path / "src" / "vocab.json").write_text('{"a": 0}')
    (tmp_path / "src" / "merges.txt").write_text("#version: 0.2\n")
    convert(str(tmp_path / "src"), str(tmp_path / "out"), to="tf", verify_outputs=False)
    assert sorted(os.listdir(tmp_path / "out")) == ["config.json", "merges.txt", "tf_model.h5", "vocab.json"]


def test_head_detection_from_weight_names(tmp_path):
    save_model(tmp_path / "src", "ForTokenClassification")
    config = json.loads((tmp_path / "src" / "config.json").read_text())
    config.pop("architectures")
    (tmp_path / "src" / "config.json").write_text(json.dumps(config))
    convert(str(tmp_path / "src"), str(tmp_path / "out"), to="tf", verify_outputs=False)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["architectures"] == [
        "DebertaForTokenClassification"]


def test_original_checkpoint_names_are_kept(tmp_path):
    """lm_predictions.lm_head.* and a position table while position_biased_input is false, as the original
    DeBERTa checkpoints have them, survive a round trip."""
    save_model(tmp_path / "src", "ForMaskedLM", "non_legacy_mlm", position_biased_input=False)
    state = tensors(tmp_path / "src")
    state["deberta.embeddings.position_embeddings.weight"] = np.random.default_rng(0).normal(
        size=(64, 32)).astype(np.float32)
    write_safetensors(str(tmp_path / "src" / "model.safetensors"), [(k, v, "float32") for k, v in state.items()])
    convert(str(tmp_path / "src"), str(tmp_path / "tf"), to="tf", verify_outputs=False)
    convert(str(tmp_path / "tf"), str(tmp_path / "back"), to="pt", verify_outputs=False)
    back = tensors(tmp_path / "back")
    assert "lm_predictions.lm_head.dense.weight" in back
    assert np.array_equal(back["deberta.embeddings.position_embeddings.weight"],
                          state["deberta.embeddings.position_embeddings.weight"])


def test_console_script_and_module_entry(tmp_path):
    save_model(tmp_path / "src")
    run = subprocess.run([sys.executable, "-m", "conversion", str(tmp_path / "src"), str(tmp_path / "out"),
                          "--to", "pt", "--format", "bin", "--no-verify"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "pytorch_model.bin").exists()
    run = subprocess.run([sys.executable, "-m", "conversion", "--help"], capture_output=True, text=True, cwd=REPO)
    for flag in ("--to", "--format", "--dtype", "--model-class", "--max-shard-size", "--no-verify", "--overwrite"):
        assert flag in run.stdout


# ----------------------------------------------------------------------------- errors: nothing left behind
def run_error(capsys, args):
    assert main([str(a) for a in args]) == 1
    return capsys.readouterr().err


def test_missing_config(tmp_path, capsys):
    save_model(tmp_path / "src")
    (tmp_path / "src" / "config.json").unlink()
    assert "no config.json" in run_error(capsys, [tmp_path / "src", tmp_path / "out", "--to", "tf"])
    assert not (tmp_path / "out").exists()


def test_no_weight_file(tmp_path, capsys):
    save_model(tmp_path / "src")
    (tmp_path / "src" / "model.safetensors").unlink()
    assert "no weight file" in run_error(capsys, [tmp_path / "src", tmp_path / "out", "--to", "tf"])


def test_truncated_file(tmp_path, capsys):
    save_model(tmp_path / "src")
    path = tmp_path / "src" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    err = run_error(capsys, [tmp_path / "src", tmp_path / "out", "--to", "tf"])
    assert "model.safetensors: truncated" in err
    assert os.listdir(tmp_path) == ["src"]  # no destination, no partial folder


def test_corrupt_h5(tmp_path, capsys):
    save_model(tmp_path / "src")
    convert(str(tmp_path / "src"), str(tmp_path / "tf"), to="tf", verify_outputs=False)
    (tmp_path / "tf" / "tf_model.h5").write_bytes(b"garbage" * 10)
    assert "tf_model.h5: not a readable HDF5 file" in run_error(capsys, [tmp_path / "tf", tmp_path / "out", "--to", "pt"])


def test_shape_disagreeing_with_config(tmp_path, capsys):
    save_model(tmp_path / "src")
    config = json.loads((tmp_path / "src" / "config.json").read_text())
    config["intermediate_size"] = 40
    (tmp_path / "src" / "config.json").write_text(json.dumps(config))
    err = run_error(capsys, [tmp_path / "src", tmp_path / "out", "--to", "tf"])
    assert "intermediate.dense.weight" in err and "(37, 32)" in err and "(40, 32)" in err


def test_unknown_weight_names_are_listed(tmp_path, capsys):
    save_model(tmp_path / "src", "Model")
    state = tensors(tmp_path / "src")
    state["encoder.mystery.weight"] = np.zeros(3, np.float32)
    state["adapter.bias"] = np.zeros(3, np.float32)
    write_safetensors(str(tmp_path / "src" / "model.safetensors"), [(k, v, "float32") for k, v in state.items()])
    err = run_error(capsys, [tmp_path / "src", tmp_path / "out", "--to", "tf"])
    assert "encoder.mystery.weight" in err and "adapter.bias" in err


def test_head_not_in_the_weights(tmp_path, capsys):
    save_model(tmp_path / "src", "ForSequenceClassification")
    err = run_error(capsys, [tmp_path / "src", tmp_path / "out", "--to", "tf", "--model-class", "ForQuestionAnswering"])
    assert "ForQuestionAnswering" in err
    save_model(tmp_path / "base", "Model")
    err = run_error(capsys, [tmp_path / "base", tmp_path / "out", "--to", "tf", "--model-class", "ForMaskedLM"])
    assert "bare model" in err and "ForMaskedLM" in err


def test_destination_not_empty(tmp_path, capsys):
    save_model(tmp_path / "src")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert "not empty" in run_error(capsys, [tmp_path / "src", tmp_path / "out", "--to", "tf"])
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--to", "tf", "--overwrite", "--no-verify"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["config.json", "tf_model.h5"]


def test_failed_verification_leaves_nothing(tmp_path, capsys, monkeypatch):
    import conversion.convert as conv

    save_model(tmp_path / "src")
    real = conv.run_model

    def broken(folder, framework, head, batch):
        out = real(folder, framework, head, batch)
        return {k: v + 1.0 for k, v in out.items()} if framework == "tf" else out

    monkeypatch.setattr(conv, "run_model", broken)
    err = run_error(capsys, [tmp_path / "src", tmp_path / "out", "--to", "tf"])
    assert "verification failed: logits" in err
    assert os.listdir(tmp_path) == ["src"]


def test_interrupted_mid_write_leaves_nothing(tmp_path, monkeypatch):
    import deberta_common.checkpoints as ck

    save_model(tmp_path / "src")
    calls = {"n": 0}
    real = ck.write_tf_h5_shard

    def interrupted(path, tensors):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(path, tensors)

    monkeypatch.setattr(ck, "write_tf_h5_shard", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert(str(tmp_path / "src"), str(tmp_path / "out"), to="tf", max_shard_size="30KB", verify_outputs=False)
    assert os.listdir(tmp_path) == ["src"]


def test_unwritable_destination(tmp_path, capsys):
    save_model(tmp_path / "src")
    # /sys refuses new entries even to root (CI runs as root, so file modes would not stop it).
    err = run_error(capsys, [tmp_path / "src", "/sys/deberta-convert-test/out", "--to", "tf"])
    assert "/sys/deberta-convert-test" in err
    (tmp_path / "a_file").write_text("x")
    err = run_error(capsys, [tmp_path / "src", tmp_path / "a_file" / "out", "--to", "tf"])
    assert "a_file" in err
    assert sorted(os.listdir(tmp_path)) == ["a_file", "src"]


def test_bad_arguments(tmp_path):
    save_model(tmp_path / "src")
    with pytest.raises(ConversionError, match="--format bin does not fit --to tf"):
        convert(str(tmp_path / "src"), str(tmp_path / "out"), to="tf", fmt="bin")
    with pytest.raises(ConversionError, match="source folder not found"):
        convert(str(tmp_path / "nope"), str(tmp_path / "out"), to="tf")


def test_two_weight_files(tmp_path, capsys):
    model = save_model(tmp_path / "src")
    model.save_pretrained(tmp_path / "src", safe_serialization=False)  # the same weights as .bin too
    assert main([str(tmp_path / "src"), str(tmp_path / "ok"), "--to", "tf", "--no-verify"]) == 0
    with torch.no_grad():
        model.deberta.encoder.layer[1].output.dense.bias.add_(1.0)
    model.save_pretrained(tmp_path / "src", safe_serialization=False)  # now the .bin disagrees
    err = run_error(capsys, [tmp_path / "src", tmp_path / "out", "--to", "tf"])
    assert "model.safetensors and pytorch_model.bin disagree on 'deberta.encoder.layer.1.output.dense.bias'" in err
    assert not (tmp_path / "out").exists()
