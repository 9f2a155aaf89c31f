"""The embedded checkpoint `deberta-zoo/tiny-mlm`, `fill_mask` for both backends, and the demo command."""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from deberta_common import DebertaTokenizer, DebertaTokenizerFast
from deberta_common.fill_mask import fill_mask
from deberta_common.hub import EMBEDDED_CHECKPOINTS, resolve_checkpoint
from deberta_pt import DebertaForMaskedLM

NAME = "deberta-zoo/tiny-mlm"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Sentences written for this test (none occurs in the training or held-out text) and a frequent word the model
# must rank in its top 5. On the released checkpoint each is its first or second choice (docs/demo.md lists them).
EXPECTED = [
    ("The input must be a [MASK] of strings.", "list"),
    ("The function returns [MASK] if the value is not found.", "None"),
    ("The value must be greater [MASK] zero.", "than"),
    ("Returns the number of [MASK] in the list.", "elements"),
    ("This method is called [MASK] the object is created.", "when"),
    ("The server returned an [MASK].", "error"),
]

@pytest.fixture(scope="module")
def tokenizer():
    return DebertaTokenizerFast.from_pretrained(resolve_checkpoint(NAME))


@pytest.fixture(scope="module")
def pt_model():
    return DebertaForMaskedLM.from_pretrained(NAME)


# ----------------------------------------------------------------------------- the name and the files
def test_embedded_name_resolves_to_the_package_folder():
    folder = resolve_checkpoint(NAME)
    assert folder == EMBEDDED_CHECKPOINTS[NAME]
    assert os.path.isdir(folder)
    names = set(os.listdir(folder))
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt", "SOURCE.md", "metrics.json"} <= names
    # Small enough to ship inside the package.
    assert sum(os.path.getsize(os.path.join(folder, n)) for n in names) < 5_000_000


def test_unknown_names_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="local folders only") as err:
        resolve_checkpoint("deberta-zoo/no-such-model")
    assert NAME in str(err.value)  # the message names what is available
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        DebertaForMaskedLM.from_pretrained("microsoft/deberta-base")
    # Folders and files behave as before.
    assert resolve_checkpoint(tmp_path) == str(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        resolve_checkpoint(tmp_path / "file.txt")


def test_pytorch_loads_by_name_with_every_weight(pt_model):
    _, info = DebertaForMaskedLM.from_pretrained(NAME, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    config = pt_model.config
    assert config.relative_attention and not config.position_biased_input
    assert config.pos_att_type == ["c2p", "p2c"] and config.legacy
    assert next(pt_model.parameters()).dtype == torch.float32


def test_metrics_are_recorded():
    with open(os.path.join(resolve_checkpoint(NAME), "metrics.json"), encoding="utf-8") as fh:
        metrics = json.load(fh)
    accuracy = metrics["heldout"]["masked_token_accuracy_top1"]
    assert 0.2 < accuracy < 1
    with open(os.path.join(resolve_checkpoint(NAME), "SOURCE.md"), encoding="utf-8") as fh:
        assert f"{accuracy * 100:.1f}%" in fh.read()


# ----------------------------------------------------------------------------- fill_mask
@pytest.mark.parametrize("text,word", EXPECTED)
def test_fill_mask_pytorch_finds_the_frequent_word(pt_model, tokenizer, text, word):
    (predictions,) = fill_mask(pt_model, tokenizer, text, top_k=5)
    words = [p["token_str"] for p in predictions]
    assert word in words, f"{text!r}: top 5 {words}"
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-9
    top = predictions[0]
    assert top["sequence"] == text.replace(" [MASK]", tokenizer.decode([top["token"]]))


def test_fill_mask_python_tokenizer_agrees(pt_model, tokenizer):
    slow = DebertaTokenizer.from_pretrained(resolve_checkpoint(NAME))
    for text, _ in EXPECTED:
        assert fill_mask(pt_model, slow, text) == fill_mask(pt_model, tokenizer, text)


def test_fill_mask_several_masks_and_errors(pt_model, tokenizer):
    results = fill_mask(pt_model, tokenizer, "It is [MASK] to use the [MASK].", top_k=3)
    assert len(results) == 2 and all(len(r) == 3 for r in results)
    assert results[0][0]["sequence"].endswith("the [MASK].")  # the other mask stays in each sequence
    with pytest.raises(ValueError, match=r"no \[MASK\]"):
        fill_mask(pt_model, tokenizer, "There is nothing to predict here.")
    with pytest.raises(ValueError, match="top_k"):
        fill_mask(pt_model, tokenizer, "It is [MASK] to use.", top_k=0)
    with pytest.raises(TypeError):
        fill_mask(object(), tokenizer, "It is [MASK] to use.")


# ----------------------------------------------------------------------------- TensorFlow
def test_tensorflow_loads_by_name_and_agrees(pt_model, tokenizer):
    deberta_tf = pytest.importorskip("deberta_tf")
    tf_model = deberta_tf.TFDebertaForMaskedLM.from_pretrained(NAME)
    for text, word in EXPECTED:
        (pt_pred,) = fill_mask(pt_model, tokenizer, text)
        (tf_pred,) = fill_mask(tf_model, tokenizer, text)
        assert [p["token"] for p in tf_pred] == [p["token"] for p in pt_pred]
        np.testing.assert_allclose([p["score"] for p in tf_pred], [p["score"] for p in pt_pred], atol=1e-5)
        assert word in [p["token_str"] for p in tf_pred]


# ----------------------------------------------------------------------------- the demo
def test_demo_pytorch_only_in_process():
    from deberta_common import demo

    out = io.StringIO()
    results = demo.run(["The server returned an [MASK]."], top_k=3, pytorch_only=True, out=out)
    assert "error" in [p["token_str"] for p in results["pytorch"][0][0]]
    assert "The server returned an [MASK]." in out.getvalue() and results["tensorflow"] is None
    assert demo.main(["--pytorch-only", "--text", "No mask in this one."]) == 1


@pytest.mark.slow
def test_demo_command_runs_both_frameworks():
    pytest.importorskip("deberta_tf")
    text = "The input must be a [MASK] of strings."
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", "deberta_common.demo", "--text", text, "--top-k", "3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert text in out and "TensorFlow (XLA)" in out and "verified" in out
    assert "'list'" in out
    diff = float(re.search(r"largest \|logit difference\| PyTorch vs TensorFlow: (\S+)", out).group(1))
    assert diff < 1e-3
    assert "(same top-3)" in out


def test_tokenizers_load_the_embedded_name():
    from deberta_common import DebertaTokenizer, DebertaTokenizerFast

    slow = DebertaTokenizer.from_pretrained("deberta-zoo/tiny-mlm")
    fast = DebertaTokenizerFast.from_pretrained("deberta-zoo/tiny-mlm")
    assert slow("The server returned an [MASK].")["input_ids"] == fast("The server returned an [MASK].")["input_ids"]
    assert len(fast) == 6000
