"""Keras fit under tf.distribute (on this CPU) ends where one device on the same global batch ends.

Every run is examples/tf_train_mirrored.py in a fresh process: logical CPU devices can only be set up before
TensorFlow initialises its devices, and each worker of a multi-worker run is a process of its own.
"""

import json
import os
import socket
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
SCRIPT = os.path.join(REPO, "examples", "tf_train_mirrored.py")
TEXTS = ["the cat sat on the mat", "a dog barked", "it rained all day long", "sunny and warm",
         "stocks fell sharply today", "the team won the match", "I like green tea", "the movie was long"]
# Two SGD steps on a global batch of 4 that pads to different lengths on the two replicas.
TRAINING = ["--batch-size", "4", "--max-steps", "2", "--optimizer", "sgd", "--lr", "0.5", "--no-dropout",
            "--no-shuffle"]
TIMEOUT = 300


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dist-tf")
    tokenizer = DebertaTokenizerFast.from_pretrained(GPT2)
    torch.manual_seed(0)
    model = deberta_pt.DebertaForSequenceClassification(make_config("relative", vocab_size=len(tokenizer)))
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    with open(folder / "train.jsonl", "w") as fh:
        for i, text in enumerate(TEXTS):
            fh.write(json.dumps({"text": text, "label": i % 2}) + "\n")
    return folder


def command(folder, out, *extra):
    return [sys.executable, SCRIPT, "--model", str(folder / "model"), "--train", str(folder / "train.jsonl"),
            "--output", str(folder / out), *TRAINING, *extra]


def environment(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return dict(env, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)


def train(folder, out, *extra):
    run = subprocess.run(command(folder, out, *extra), capture_output=True, text=True, cwd=REPO,
                         env=environment(), timeout=TIMEOUT)
    assert run.returncode == 0, run.stdout + run.stderr
    return folder / out


def weights(folder):
    reader = CheckpointReader(str(folder))
    return {k: reader.numpy(k) for k in reader.keys()}


def assert_same_weights(got, expected):
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def single(checkpoint):
    """One device, no replication (the default strategy)."""
    out = train(checkpoint, "single", "--strategy", "none")
    assert os.path.isfile(out / "tf_model.h5")
    return weights(out)


def test_single_device_moves_the_weights_as_pytorch_does(checkpoint, single):
    start = weights(checkpoint / "model")
    assert any(np.abs(start[k] - single[k]).max() > 1e-4 for k in single)  # the steps did change the weights
    # The PyTorch example, on the same rows, batches and optimizer, takes the same steps.
    run = subprocess.run([sys.executable, os.path.join(REPO, "examples", "pt_train_ddp.py"),
                          *command(checkpoint, "pytorch")[2:]], capture_output=True, text=True, cwd=REPO,
                         env=dict(environment(), OMP_NUM_THREADS="1"), timeout=TIMEOUT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert_same_weights(single, weights(checkpoint / "pytorch"))


def test_mirrored_two_cpu_devices_match_one(checkpoint, single):
    out = train(checkpoint, "mirrored", "--strategy", "mirrored", "--cpu-devices", "2")
    assert_same_weights(weights(out), single)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["DebertaForSequenceClassification"]
    assert os.path.isfile(out / "tokenizer.json")
    # The checkpoint is an ordinary TensorFlow one: it converts to PyTorch (outputs verified) and loads there.
    from conversion.convert import convert

    converted = convert(str(out), str(checkpoint / "mirrored-pt"), to="pt", log=lambda message: None)
    model = deberta_pt.DebertaForSequenceClassification.from_pretrained(converted)
    loaded = {name: p.detach().numpy() for name, p in model.state_dict().items()}
    for name, value in single.items():
        np.testing.assert_allclose(loaded[name], value, rtol=0, atol=1e-5, err_msg=name)
    tokenizer = DebertaTokenizerFast.from_pretrained(converted)
    batch = tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_workers_match_one(checkpoint, single):
    """MultiWorkerMirroredStrategy: two worker processes on localhost, one CPU replica each."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    procs = []
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
            procs.append(subprocess.Popen(command(checkpoint, f"worker{index}", "--strategy", "multiworker"),
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                                          env=environment(TF_CONFIG=tf_config)))
        outputs = [proc.communicate(timeout=TIMEOUT)[0] for proc in procs]
    finally:
        for proc in procs:  # a worker left waiting on its peer's collectives would wait for ever
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output
    assert "2 replica(s), 2 steps of 4" in outputs[0]
    assert not os.path.exists(checkpoint / "worker1")  # only the chief (worker 0) writes
    assert_same_weights(weights(checkpoint / "worker0"), single)
