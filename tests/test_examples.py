"""The task examples (examples/pt_*.py, examples/tf_*.py, examples/common.py).

Each script trains a few steps on the embedded tiny model and the tiny data of tests/fixtures/tasks in a
subprocess: its eval loss goes down and it writes a checkpoint (and tokenizer) that loads. Then the shared
pieces: label alignment, QA windows and span decoding, the learning-rate schedule in both frameworks, and
one fine-tuning step in PyTorch and in Keras giving the same weights.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples")
DATA = os.path.join(REPO, "tests", "fixtures", "tasks")


def data(name: str) -> str:
    return os.path.join(DATA, name)


def load_common():
    if "examples_common" not in sys.modules:
        spec = importlib.util.spec_from_file_location("examples_common", os.path.join(EXAMPLES, "common.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["examples_common"] = module
        spec.loader.exec_module(module)
    return sys.modules["examples_common"]


# One thread each: on a shared, busy CPU, torch's two OpenMP threads can make a run ten times slower.
ONE_THREAD = dict(TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")

# script, model class, its arguments (besides --output); a few steps each, chosen so that the loss clearly falls
RUNS = {
    "pt_text_classification-single_label": (
        "pt_text_classification", "DebertaForSequenceClassification",
        ["--task", "single_label", "--train", data("sentiment_train.csv"), "--eval", data("sentiment_eval.csv"),
         "--epochs", "6", "--lr", "5e-4", "--batch-size", "8", "--max-length", "24"]),
    "pt_text_classification-multi_label": (
        "pt_text_classification", "DebertaForSequenceClassification",
        ["--task", "multi_label", "--train", data("topics_train.jsonl"), "--eval", data("topics_eval.jsonl"),
         "--epochs", "4", "--lr", "1e-3", "--batch-size", "8", "--max-length", "24"]),
    "tf_text_classification-regression-xla": (
        "tf_text_classification", "TFDebertaForSequenceClassification",
        ["--task", "regression", "--train", data("similarity_train.jsonl"), "--eval", data("similarity_eval.jsonl"),
         "--epochs", "2", "--lr", "1e-3", "--batch-size", "8", "--max-length", "24", "--xla"]),
    "pt_token_classification-amp-accum": (
        "pt_token_classification", "DebertaForTokenClassification",
        ["--train", data("ner_train.jsonl"), "--eval", data("ner_eval.jsonl"), "--epochs", "2", "--lr", "1e-3",
         "--batch-size", "4", "--grad-accum", "2", "--amp", "--max-length", "32"]),
    "tf_token_classification": (
        "tf_token_classification", "TFDebertaForTokenClassification",
        ["--train", data("ner_train.jsonl"), "--eval", data("ner_eval.jsonl"), "--epochs", "2", "--lr", "1e-3",
         "--batch-size", "8", "--max-length", "32"]),
    "pt_masked_lm-whole_word-line_by_line": (
        "pt_masked_lm", "DebertaForMaskedLM",
        ["--train", data("mlm_train.txt"), "--eval", data("mlm_eval.txt"), "--whole-word-masking", "--line-by-line",
         "--epochs", "2", "--lr", "1e-3", "--batch-size", "8", "--max-length", "32"]),
    "tf_masked_lm": (
        "tf_masked_lm", "TFDebertaForMaskedLM",
        ["--train", data("mlm_train.txt"), "--eval", data("mlm_eval.txt"), "--epochs", "2", "--lr", "1e-3",
         "--batch-size", "8", "--max-length", "32"]),
    "pt_question_answering": (
        "pt_question_answering", "DebertaForQuestionAnswering",
        ["--train", data("qa_train.jsonl"), "--eval", data("qa_eval.jsonl"), "--max-steps", "8", "--lr", "1e-3",
         "--batch-size", "8", "--max-length", "64", "--doc-stride", "16"]),
    "tf_question_answering": (
        "tf_question_answering", "TFDebertaForQuestionAnswering",
        ["--train", data("qa_train.jsonl"), "--eval", data("qa_eval.jsonl"), "--max-steps", "8", "--lr", "1e-3",
         "--batch-size", "8", "--max-length", "64", "--doc-stride", "16"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("run", list(RUNS))
def test_script_trains_and_saves_a_checkpoint(run, tmp_path):
    script, model_class, arguments = RUNS[run]
    output = tmp_path / "out"
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, script + ".py"), *arguments, "--output", str(output)],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env=dict(os.environ, **ONE_THREAD))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    results = json.loads((output / "metrics.json").read_text())
    evaluations = results["eval"]
    assert [e["epoch"] for e in evaluations] == list(range(len(evaluations))) and len(evaluations) >= 2
    assert evaluations[-1]["loss"] < evaluations[0]["loss"] - 0.005, evaluations
    assert results["train_loss"] and all(np.isfinite(results["train_loss"]))
    assert results["best"] is not None and results["best"]["epoch"] >= 1
    assert results["monitor"] in results["best"]

    from deberta_common import DebertaTokenizerFast

    assert len(DebertaTokenizerFast.from_pretrained(str(output))) == 6000
    if model_class.startswith("TF"):
        import deberta_tf

        model, info = getattr(deberta_tf, model_class).from_pretrained(str(output), output_loading_info=True)
    else:
        import deberta_pt

        model, info = getattr(deberta_pt, model_class).from_pretrained(str(output), output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    config = json.loads((output / "config.json").read_text())
    if "regression" in run:
        assert config["problem_type"] == "regression" and config["id2label"] == {"0": "LABEL_0"}
    elif "multi_label" in run:
        assert config["problem_type"] == "multi_label_classification"
        assert sorted(config["label2id"]) == ["money", "sports", "weather"]
    elif "token_classification" in run:
        assert sorted(config["label2id"]) == ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]


def task_args(**values) -> argparse.Namespace:
    defaults = dict(model="deberta-zoo/tiny-mlm", tokenizer=None, batch_size=8, seed=0, max_length=64)
    return argparse.Namespace(**{**defaults, **values})


def test_word_labels_follow_the_given_words_and_come_back_from_the_first_pieces():
    common = load_common()
    args = task_args(train=data("ner_train.jsonl"), eval=data("ner_eval.jsonl"), max_length=48)
    tokenizer = common.load_tokenizer(args)
    task = common.TokenClassification(args, tokenizer)
    assert task.label_names == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
    rows = [json.loads(line) for line in open(data("ner_eval.jsonl"), encoding="utf-8")]
    for row, words, labels in zip(rows, task.eval_word_ids, task.eval_inputs["labels"]):
        # every word is reached, in order, and labelled on its first piece only
        assert [w for i, w in enumerate(words) if w is not None and (i == 0 or words[i - 1] != w)] == \
            list(range(len(row["tokens"])))
        first = [i for i, w in enumerate(words) if w is not None and words[i - 1] != w]
        assert [task.label_names[labels[i]] for i in first] == row["tags"]
        assert all(labels[i] == -100 for i in range(len(words)) if i not in first)
    # a word with punctuation inside ("St.") is one word here, two for the tokenizer's own word_ids()
    encoded = tokenizer("We visited St. Petersburg", return_offsets_mapping=True)
    assert encoded.word_ids() == [None, 0, 1, 2, 3, 4, 4, 4, 4, 4, None]
    assert common.word_ids_from_offsets(encoded["offset_mapping"], [0, 3, 11, 15]) == \
        [None, 0, 1, 2, 2, 3, 3, 3, 3, 3, None]
    # the gold labels as predictions give the gold tags back, and an entity F1 of 1
    predictions = np.where(task.eval_inputs["labels"] == -100, 0, task.eval_inputs["labels"])
    assert task.word_tags(predictions) == task.eval_tags
    logits = np.eye(len(task.label_names))[predictions]
    assert task.metrics({"logits": logits})["f1"] == 1.0


def test_question_answering_windows_and_decoding():
    common = load_common()
    args = task_args(train=data("qa_train.jsonl"), eval=data("qa_eval.jsonl"), doc_stride=16, n_best=20,
                     max_answer_length=30)
    task = common.QuestionAnswering(args, common.load_tokenizer(args))
    counts = np.bincount(task.eval_feature_example)
    assert len(counts) == len(task.eval_examples) and counts.min() >= 2  # every context needs 2+ windows
    starts, ends = task.eval_inputs["start_positions"], task.eval_inputs["end_positions"]
    for number in range(len(task.eval_examples)):  # the answer lies wholly inside at least one window
        assert any(starts[i] > 0 for i in np.flatnonzero(np.array(task.eval_feature_example) == number))
    # logits peaking at the labelled positions decode to the true answers
    length = task.eval_inputs["input_ids"].shape[1]
    start_logits = np.eye(length)[starts] * 10
    end_logits = np.eye(length)[ends] * 10
    assert task.metrics({"start_logits": start_logits, "end_logits": end_logits}) == {"exact_match": 1.0, "f1": 1.0}


def test_the_keras_schedule_gives_the_pytorch_learning_rates():
    common = load_common()
    schedule = common.LinearWarmupDecay(1e-3, 3, 10)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: float(common.linear_warmup_decay(s, 3, 10)))
    seen = []
    for step in range(12):
        seen.append(optimizer.param_groups[0]["lr"])
        np.testing.assert_allclose(float(schedule(step)), seen[-1], rtol=1e-6, atol=1e-12)
        optimizer.step()
        scheduler.step()
    expected = [0, 1e-3 / 3, 2e-3 / 3, 1e-3] + [1e-3 * (10 - s) / 7 for s in range(4, 10)] + [0, 0]
    np.testing.assert_allclose(seen, expected, atol=1e-12)


def test_one_fine_tuning_step_gives_the_same_weights_in_pytorch_and_keras(tmp_path):
    import keras
    import tensorflow as tf

    from deberta_common.checkpoints import CheckpointReader
    from deberta_pt import DebertaForSequenceClassification
    from deberta_tf import TFDebertaForSequenceClassification

    tf.config.experimental.enable_tensor_float_32_execution(False)  # GPUs: full float32 matmuls, as PyTorch
    common = load_common()
    args = task_args(task="single_label", train=data("sentiment_train.csv"), eval=data("sentiment_eval.csv"),
                     text_column="text", text_pair_column="text_pair", label_column=None, label_separator="|",
                     max_length=24)
    tokenizer = common.load_tokenizer(args)
    task = common.TextClassification(args, tokenizer)
    torch.manual_seed(0)
    DebertaForSequenceClassification.from_pretrained("deberta-zoo/tiny-mlm", **task.model_overrides()) \
        .save_pretrained(tmp_path / "start")  # one head for both
    batch = next(common.array_batches(task.train_arrays, 8))
    no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, cls_dropout=0.0)
    lr = 0.5

    pt_model = DebertaForSequenceClassification.from_pretrained(tmp_path / "start", **no_dropout).train()
    optimizer = torch.optim.SGD(pt_model.parameters(), lr=lr)
    pt_model(**{k: torch.from_numpy(v) for k, v in batch.items()}).loss.backward()
    optimizer.step()
    pt_model.save_pretrained(tmp_path / "pt")

    tf_model = TFDebertaForSequenceClassification.from_pretrained(tmp_path / "start", **no_dropout)
    tf_model.compile(optimizer=keras.optimizers.SGD(lr))  # the model's own loss, from the labels in the dict
    tf_model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0, shuffle=False)
    tf_model.save_pretrained(tmp_path / "tf")

    start, pt_after, tf_after = (CheckpointReader(str(tmp_path / name)) for name in ("start", "pt", "tf"))
    assert sorted(pt_after.keys()) == sorted(tf_after.keys()) == sorted(start.keys())
    moved = 0
    for name in pt_after.keys():
        np.testing.assert_allclose(tf_after.numpy(name), pt_after.numpy(name), rtol=0, atol=1e-5, err_msg=name)
        moved += not np.allclose(pt_after.numpy(name), start.numpy(name), rtol=0, atol=1e-4)
    assert moved > len(pt_after.keys()) // 2  # the step changed most weights
