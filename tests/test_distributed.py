"""Training on several processes (gloo, on this CPU) ends where one process on the same global batch ends."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import deberta_pt
from deberta_common import DebertaTokenizerFast
from deberta_common.checkpoints import CheckpointReader
from variants import make_config

pytestmark = pytest.mark.slow  # subprocesses
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPT2 = os.path.join(REPO, "tests", "fixtures", "gpt2")
TEXTS = ["the cat sat on the mat", "a dog barked", "it rained all day long", "sunny and warm",
         "stocks fell sharply today", "the team won the match", "I like green tea", "the movie was long"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dist")
    tokenizer = DebertaTokenizerFast.from_pretrained(GPT2)
    torch.manual_seed(0)
    model = deberta_pt.DebertaForSequenceClassification(make_config("relative", vocab_size=len(tokenizer)))
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    with open(folder / "train.jsonl", "w") as fh:
        for i, text in enumerate(TEXTS):
            fh.write(json.dumps({"text": text, "label": i % 2}) + "\n")
    return folder


def train(folder, out, nproc, *extra):
    script = os.path.join(REPO, "examples", "pt_train_ddp.py")
    args = ["--model", str(folder / "model"), "--train", str(folder / "train.jsonl"), "--output", str(folder / out),
            "--batch-size", "4", "--max-steps", "2", "--optimizer", "sgd", "--lr", "0.5", "--no-dropout",
            "--no-shuffle", *extra]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    run = subprocess.run(launcher + [script] + args, capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return folder / out


def weights(folder):
    reader = CheckpointReader(str(folder))
    return {k: reader.numpy(k) for k in reader.keys()}


MODES = {"ddp": [], "fsdp": ["--fsdp"], "fsdp-checkpointing": ["--fsdp", "--gradient-checkpointing"]}


@pytest.fixture(scope="module")
def single(checkpoint):
    """The weights after the same steps in one process."""
    return weights(train(checkpoint, "single", 1))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_two_processes_match_one(checkpoint, single, mode):
    multi_dir = train(checkpoint, mode, 2, *MODES[mode])
    multi = weights(multi_dir)
    assert sorted(single) == sorted(multi)
    start = weights(checkpoint / "model")
    assert any(not np.allclose(start[k], single[k]) for k in single)  # the step did change the weights
    for name in single:
        np.testing.assert_allclose(multi[name], single[name], rtol=0, atol=1e-5, err_msg=name)
    config = json.loads((multi_dir / "config.json").read_text())
    assert config["architectures"] == ["DebertaForSequenceClassification"]
    # the gathered checkpoint is an ordinary one: it loads, and converts to TensorFlow
    deberta_pt.DebertaForSequenceClassification.from_pretrained(multi_dir)
    from conversion.convert import convert

    convert(str(multi_dir), str(checkpoint / f"{mode}-tf"), to="tf")


def test_fsdp_keeps_the_masked_lm_embeddings_tied(tmp_path):
    """Every rank's MLM loss has the same number of labelled tokens here, so the sharded step equals one
    process on the whole batch; the decoder stays tied to the word embeddings through it."""
    torch.manual_seed(0)
    model = deberta_pt.DebertaForMaskedLM(make_config("relative"))
    model.save_pretrained(tmp_path / "mlm")
    script = os.path.join(REPO, "tests", "fsdp_mlm_step.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for launcher, out in (([sys.executable], "single"),
                          ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], "fsdp")):
        extra = ["--fsdp"] if out == "fsdp" else []
        run = subprocess.run(launcher + [script, str(tmp_path / "mlm"), str(tmp_path / out)] + extra,
                             capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
    single, sharded = weights(tmp_path / "single"), weights(tmp_path / "fsdp")
    assert "cls.predictions.decoder.weight" not in sharded  # saved once, under the embeddings' name
    for name in single:
        np.testing.assert_allclose(sharded[name], single[name], rtol=0, atol=1e-5, err_msg=name)
    reloaded = deberta_pt.DebertaForMaskedLM.from_pretrained(tmp_path / "fsdp")
    assert reloaded.cls.predictions.decoder.weight is reloaded.deberta.embeddings.word_embeddings.weight
