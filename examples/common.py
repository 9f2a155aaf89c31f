"""What the eight task examples share: arguments, data files, the four tasks' data and metrics, the learning-rate
schedule, "keep the best epoch", the PyTorch training loop and the Keras `fit` set-up.

    examples/pt_text_classification.py   examples/tf_text_classification.py
    examples/pt_token_classification.py  examples/tf_token_classification.py
    examples/pt_masked_lm.py             examples/tf_masked_lm.py
    examples/pt_question_answering.py    examples/tf_question_answering.py

Each script picks a task (one of the `Task` classes below), builds its model, and hands both to
`train_pytorch` or `train_keras`. A task turns its data files into numpy batches and its model's numpy outputs
into metrics, the same for both frameworks; the masking, label alignment, QA windows and span decoding come
from `deberta_common.data` and the metrics from `deberta_common.metrics`.

This module imports neither torch nor TensorFlow at the top: the PyTorch parts import torch inside
`train_pytorch`, and the Keras classes (`SavePretrainedOnImprovement`, `LinearWarmupDecay`, `StopAfterSteps`)
are created on first access, so a PyTorch script never loads TensorFlow.

Every run writes `metrics.json` into --output: the training losses, the evaluation before training (epoch 0)
and after every epoch, and the best epoch, whose weights and tokenizer files are in --output.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import functools
import json
import math
import os
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from deberta_common import DebertaTokenizerFast, metrics
from deberta_common.data import MaskedLMCollator, align_labels, best_answer, pad_batch, prepare_qa_features
from deberta_common.hub import resolve_checkpoint
from deberta_common.rules import IGNORE_INDEX

TASKS = ("text_classification", "token_classification", "masked_lm", "question_answering")


# ============================================================================= arguments
def argument_parser(description: str, framework: str, task: str) -> argparse.ArgumentParser:
    """The arguments every script takes, those of its framework ("pytorch" or "keras") and of its task."""
    if framework not in ("pytorch", "keras") or task not in TASKS:
        raise ValueError(f"unknown framework {framework!r} or task {task!r}")
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="deberta-zoo/tiny-mlm",
                        help="checkpoint folder, or the embedded name deberta-zoo/tiny-mlm (default)")
    parser.add_argument("--tokenizer", help="tokenizer folder or embedded name (default: --model)")
    parser.add_argument("--train", required=True, nargs="+" if task == "masked_lm" else None,
                        help="training data" + (" (one or more text files)" if task == "masked_lm" else ""))
    parser.add_argument("--eval", required=True, nargs="+" if task == "masked_lm" else None, help="evaluation data")
    parser.add_argument("--output", required=True, help="folder for the best checkpoint, tokenizer and metrics.json")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate")
    parser.add_argument("--max-length", type=int, default=384 if task == "question_answering" else 128,
                        help="tokens per sequence (per window for question answering)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many optimizer steps (0: no limit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup-ratio", type=float, default=0.1, help="share of the steps spent warming up")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (not on biases/LayerNorm)")
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="clip the global gradient norm (0: off)")
    if framework == "pytorch":
        parser.add_argument("--amp", action="store_true", help="autocast to bfloat16 (CPU or GPU)")
        parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    else:
        parser.add_argument("--xla", action="store_true", help="compile the train/eval/predict steps with XLA")
    if task == "text_classification":
        parser.add_argument("--task", choices=("single_label", "multi_label", "regression"), default="single_label")
        parser.add_argument("--text-column", default="text")
        parser.add_argument("--text-pair-column", default="text_pair", help="used when the data has it")
        parser.add_argument("--label-column", default=None,
                            help='default: "labels" for multi_label, "label" otherwise')
        parser.add_argument("--label-separator", default="|", help="between a CSV cell's labels (multi_label)")
    elif task == "masked_lm":
        parser.add_argument("--mlm-probability", type=float, default=0.15)
        parser.add_argument("--whole-word-masking", action="store_true", help="mask every piece of a chosen word")
        parser.add_argument("--line-by-line", action="store_true",
                            help="one example per line (default: lines joined and cut into --max-length blocks)")
    elif task == "question_answering":
        parser.add_argument("--doc-stride", type=int, default=128, help="tokens shared by consecutive windows")
        parser.add_argument("--n-best", type=int, default=20, help="start and end candidates per window")
        parser.add_argument("--max-answer-length", type=int, default=30, help="in tokens")
    return parser


# ============================================================================= files and tokenizer
def read_records(path: str) -> list[dict[str, Any]]:
    """Rows of a CSV file (with a header) or of a JSON-lines file (.jsonl, .json), as dicts."""
    with open(path, encoding="utf-8", newline="") as fh:
        if path.endswith(".csv"):
            return list(csv.DictReader(fh))
        return [json.loads(line) for line in fh if line.strip()]


def read_lines(paths: Sequence[str]) -> list[str]:
    """The non-empty lines of plain-text files, stripped."""
    lines = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            lines += [line.strip() for line in fh if line.strip()]
    return lines


def load_tokenizer(args: argparse.Namespace) -> DebertaTokenizerFast:
    """The fast tokenizer of --tokenizer, or of --model (folders or embedded names)."""
    return DebertaTokenizerFast.from_pretrained(resolve_checkpoint(args.tokenizer or args.model))


# ============================================================================= batches
def array_batches(arrays: dict[str, np.ndarray], batch_size: int, rng: Optional[np.random.Generator] = None
                  ) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive batches of equally long arrays, shuffled by `rng` when given (the last may be short)."""
    n = len(next(iter(arrays.values())))
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        rows = order[start: start + batch_size]
        yield {key: value[rows] for key, value in arrays.items()}


# ============================================================================= tasks
class Task:
    """A task's data (train batches, one fixed eval set) and metrics, framework-free.

    `eval_inputs` is one dict of equally long numpy arrays padded to a single length, so that the outputs
    of every eval batch concatenate; `metrics(outputs)` takes those concatenated outputs (`output_names`)
    and returns floats, `monitor` being the one that picks the best epoch ("max" or "min" by `mode`).
    """

    output_names: tuple[str, ...] = ("logits",)
    monitor = "loss"
    mode = "min"

    def __init__(self, args: argparse.Namespace, tokenizer: DebertaTokenizerFast) -> None:
        self.args, self.tokenizer = args, tokenizer
        self.batch_size = args.batch_size
        self.rng = np.random.default_rng(args.seed)
        self.train_arrays: Optional[dict[str, np.ndarray]] = None  # set by tasks whose batches are fixed rows
        self.eval_inputs: dict[str, np.ndarray] = {}

    def model_overrides(self) -> dict[str, Any]:
        """Config overrides for from_pretrained (labels, problem type)."""
        return {}

    @property
    def num_train_batches(self) -> int:
        return math.ceil(self.num_train_rows / self.batch_size)

    @property
    def num_train_rows(self) -> int:
        return len(next(iter(self.train_arrays.values())))

    def train_batches(self) -> Iterator[dict[str, np.ndarray]]:
        """One epoch of shuffled training batches (numpy dicts of model inputs and labels)."""
        return array_batches(self.train_arrays, self.batch_size, self.rng)

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        return {}


class TextClassification(Task):
    """Text (and optional text pair) -> one label, several labels, or a number.

    single_label: `label` is a class name or integer; multi_label: `labels` is a list of class names (in a CSV
    cell, names separated by --label-separator); regression: `label` is a number.
    """

    def __init__(self, args: argparse.Namespace, tokenizer: DebertaTokenizerFast) -> None:
        super().__init__(args, tokenizer)
        self.kind = args.task
        self.label_column = args.label_column or ("labels" if self.kind == "multi_label" else "label")
        train, evaluation = read_records(args.train), read_records(args.eval)
        self.label_names = self._label_names(train) if self.kind != "regression" else None
        self.train_arrays = self.encode(train)
        self.eval_inputs = self.encode(evaluation)
        self.monitor, self.mode = {"single_label": ("accuracy", "max"), "multi_label": ("f1", "max"),
                                   "regression": ("mse", "min")}[self.kind]

    def _labels_of(self, row: dict[str, Any]) -> Any:
        value = row[self.label_column]
        if self.kind == "multi_label" and isinstance(value, str):
            return [v.strip() for v in value.split(self.args.label_separator) if v.strip()]
        return value

    def _label_names(self, rows: list[dict[str, Any]]) -> list[str]:
        names = set()
        for row in rows:
            value = self._labels_of(row)
            names.update(str(v) for v in (value if self.kind == "multi_label" else [value]))
        numeric = all(n.lstrip("-").isdigit() for n in names)
        return sorted(names, key=(lambda n: int(n)) if numeric else None)

    def encode(self, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        texts = [str(r[self.args.text_column]) for r in rows]
        has_pair = all(r.get(self.args.text_pair_column) not in (None, "") for r in rows)
        pairs = [str(r[self.args.text_pair_column]) for r in rows] if has_pair else None
        encoded = self.tokenizer(texts, pairs, padding=True, truncation=True, max_length=self.args.max_length)
        inputs = ("input_ids", "attention_mask", "token_type_ids")
        arrays = {key: np.array(encoded[key], dtype=np.int64) for key in inputs}
        if self.kind == "regression":
            arrays["labels"] = np.array([float(self._labels_of(r)) for r in rows], dtype=np.float32)
            return arrays
        index = {name: i for i, name in enumerate(self.label_names)}
        unknown = {str(v) for r in rows for v in np.atleast_1d(self._labels_of(r))} - set(index)
        if unknown:
            raise SystemExit(f"labels {sorted(unknown)} are not in the training data's {self.label_names}")
        if self.kind == "single_label":
            arrays["labels"] = np.array([index[str(self._labels_of(r))] for r in rows], dtype=np.int64)
        else:
            arrays["labels"] = np.zeros((len(rows), len(index)), dtype=np.float32)
            for row, r in enumerate(rows):
                arrays["labels"][row, [index[str(v)] for v in self._labels_of(r)]] = 1.0
        return arrays

    def model_overrides(self) -> dict[str, Any]:
        if self.kind == "regression":
            return {"num_labels": 1, "problem_type": "regression"}
        id2label = dict(enumerate(self.label_names))
        kind = "multi_label_classification" if self.kind == "multi_label" else "single_label_classification"
        return {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}, "problem_type": kind}

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        logits, labels = outputs["logits"].astype(np.float64), self.eval_inputs["labels"]
        if self.kind == "single_label":
            predictions = logits.argmax(-1)
            return {"accuracy": metrics.accuracy(predictions, labels), "f1": metrics.f1(predictions, labels)}
        if self.kind == "multi_label":
            return {"f1": metrics.multi_label_f1(1 / (1 + np.exp(-logits)), labels)}
        predictions = logits[:, 0]
        return {"mse": float(np.mean((predictions - labels) ** 2)),
                "pearson": float(np.corrcoef(predictions, labels)[0, 1]) if predictions.std() > 0 else 0.0}


def word_ids_from_offsets(offsets: Sequence[tuple[int, int]], word_starts: Sequence[int]) -> list[Optional[int]]:
    """The word of every token of a text made of words joined by single spaces: the last word starting at or
    before the token's first character (None for special tokens and padding, whose offsets are empty).

    The tokenizer's own `word_ids()` splits words at punctuation too ("St." is two words there), so pieces
    are mapped back to the given words through their character offsets instead."""
    return [None if end <= start else bisect.bisect_right(word_starts, start) - 1 for start, end in offsets]


class TokenClassification(Task):
    """JSON lines {"tokens": [words], "tags": [BIO tags]}: one label per word, carried by its first piece
    (continuation pieces, special tokens and padding are -100); evaluated with entity-level F1."""

    monitor, mode = "f1", "max"

    def __init__(self, args: argparse.Namespace, tokenizer: DebertaTokenizerFast) -> None:
        super().__init__(args, tokenizer)
        train, evaluation = read_records(args.train), read_records(args.eval)
        tags = {t for r in train for t in r["tags"]}
        self.label_names = ["O"] * ("O" in tags) + sorted(tags - {"O"})
        self.train_arrays, _ = self.encode(train)
        self.eval_inputs, self.eval_word_ids = self.encode(evaluation)
        self.eval_tags = [r["tags"] for r in evaluation]

    def encode(self, rows: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], list[list[Optional[int]]]]:
        index = {name: i for i, name in enumerate(self.label_names)}
        texts, starts = [], []
        for r in rows:
            if len(r["tokens"]) != len(r["tags"]):
                raise SystemExit(f"{len(r['tokens'])} tokens but {len(r['tags'])} tags in {r}")
            positions = np.cumsum([0] + [len(w) + 1 for w in r["tokens"][:-1]])
            texts.append(" ".join(r["tokens"]))
            starts.append(positions.tolist())
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.args.max_length,
                                 return_offsets_mapping=True)
        word_ids = [word_ids_from_offsets(o, s) for o, s in zip(encoded["offset_mapping"], starts)]
        labels = [align_labels(w, [index.get(t, index.get("O", 0)) for t in r["tags"]]) for w, r in zip(word_ids, rows)]
        arrays = {key: np.array(encoded[key], dtype=np.int64) for key in ("input_ids", "attention_mask")}
        arrays["labels"] = np.array(labels, dtype=np.int64)
        return arrays, word_ids

    def model_overrides(self) -> dict[str, Any]:
        id2label = dict(enumerate(self.label_names))
        return {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}

    def word_tags(self, predictions: np.ndarray) -> list[list[str]]:
        """Per sentence, the tag predicted at each word's first piece ("O" for words cut by truncation)."""
        sentences = []
        for row, (words, gold) in enumerate(zip(self.eval_word_ids, self.eval_tags)):
            tags = ["O"] * len(gold)
            for position in reversed(range(len(words))):  # the first piece of a word wins
                if words[position] is not None:
                    tags[words[position]] = self.label_names[int(predictions[row, position])]
            sentences.append(tags)
        return sentences

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        predictions = outputs["logits"].argmax(-1)
        scores = metrics.entity_f1(self.word_tags(predictions), self.eval_tags)
        scores["accuracy"] = metrics.accuracy(predictions, self.eval_inputs["labels"])
        return scores


class MaskedLM(Task):
    """Plain text -> masked-language-model examples, masked anew for every batch (MaskedLMCollator, 15% of
    the tokens or of whole words, 80/10/10). The eval set is masked once, with a fixed seed."""

    def __init__(self, args: argparse.Namespace, tokenizer: DebertaTokenizerFast) -> None:
        super().__init__(args, tokenizer)
        self.collator = MaskedLMCollator(tokenizer, args.mlm_probability, args.whole_word_masking, seed=args.seed)
        self.train_examples = self.examples(read_lines(args.train))
        eval_collator = MaskedLMCollator(tokenizer, args.mlm_probability, args.whole_word_masking, seed=args.seed + 1)
        self.eval_inputs = eval_collator(self.examples(read_lines(args.eval)))

    def examples(self, lines: list[str]) -> list[list[int]]:
        """Token ids with [CLS] ... [SEP]: one example per line, or (default) the lines' tokens joined and cut
        into blocks of --max-length (every line starts with a space there, so that it begins a word)."""
        tok, room = self.tokenizer, self.args.max_length - 2
        if self.args.line_by_line:
            return tok(lines, truncation=True, max_length=self.args.max_length)["input_ids"]
        stream = [i for ids in tok([" " + line for line in lines], add_special_tokens=False)["input_ids"] for i in ids]
        return [[tok.cls_token_id] + stream[i: i + room] + [tok.sep_token_id] for i in range(0, len(stream), room)]

    @property
    def num_train_rows(self) -> int:
        return len(self.train_examples)

    def train_batches(self) -> Iterator[dict[str, np.ndarray]]:
        order = self.rng.permutation(len(self.train_examples))
        for start in range(0, len(order), self.batch_size):
            chosen = [self.train_examples[i] for i in order[start: start + self.batch_size]]
            batch = self.collator(chosen)
            while (batch["labels"] == IGNORE_INDEX).all():  # no token chosen: the loss would be NaN; draw again
                batch = self.collator(chosen)
            yield batch

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        return {"accuracy": metrics.accuracy(outputs["logits"].argmax(-1), self.eval_inputs["labels"])}


class QuestionAnswering(Task):
    """JSON lines {"question", "context", "answers": {"text": [...], "answer_start": [...]}}: every example
    becomes windows over its context (prepare_qa_features, --max-length, --doc-stride); the answer of an
    example is the best span over all its windows (best_answer), scored by exact match and F1. A window
    without the answer, or an example without one, is trained towards [CLS] (position 0); decoding always
    picks a span of the context."""

    output_names = ("start_logits", "end_logits")
    monitor, mode = "f1", "max"

    def __init__(self, args: argparse.Namespace, tokenizer: DebertaTokenizerFast) -> None:
        super().__init__(args, tokenizer)
        self.train_arrays, _, _ = self.encode(read_records(args.train))
        self.eval_examples = read_records(args.eval)
        self.eval_inputs, self.eval_features, self.eval_feature_example = self.encode(self.eval_examples)

    def encode(self, rows: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], list[dict], list[int]]:
        features, example_of = [], []
        for number, row in enumerate(rows):
            answers = row.get("answers") or {"text": [], "answer_start": []}
            start, text = (answers["answer_start"][0], answers["text"][0]) if answers["text"] else (None, None)
            windows = prepare_qa_features(self.tokenizer, row["question"], row["context"], self.args.max_length,
                                          self.args.doc_stride, start, text)
            for window in windows:  # no answer: trained towards [CLS], position 0
                window.setdefault("start_positions", 0)
                window.setdefault("end_positions", 0)
            features += windows
            example_of += [number] * len(windows)
        arrays = {"input_ids": pad_batch([f["input_ids"] for f in features], self.tokenizer.pad_token_id),
                  "token_type_ids": pad_batch([f["token_type_ids"] for f in features], 0),
                  "attention_mask": pad_batch([f["attention_mask"] for f in features], 0),
                  "start_positions": np.array([f["start_positions"] for f in features], dtype=np.int64),
                  "end_positions": np.array([f["end_positions"] for f in features], dtype=np.int64)}
        return arrays, features, example_of

    def predictions(self, outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """The best answer of every eval example, from the start/end logits of its windows."""
        answers = []
        for number, example in enumerate(self.eval_examples):
            rows = [i for i, e in enumerate(self.eval_feature_example) if e == number]
            answers.append(best_answer([outputs["start_logits"][i] for i in rows],
                                       [outputs["end_logits"][i] for i in rows],
                                       [self.eval_features[i] for i in rows], example["context"],
                                       self.args.n_best, self.args.max_answer_length))
        return answers

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        answers = self.predictions(outputs)
        truths = [e["answers"]["text"] for e in self.eval_examples]
        return {"exact_match": float(np.mean([metrics.exact_match(a["text"], t) for a, t in zip(answers, truths)])),
                "f1": float(np.mean([metrics.span_f1(a["text"], t) for a, t in zip(answers, truths)]))}


# ============================================================================= schedule and bookkeeping
def linear_warmup_decay(step: Any, warmup_steps: int, total_steps: int, xp: Any = np) -> Any:
    """Multiplier of the peak learning rate at optimizer step `step` (from 0): rising linearly from 0 over
    `warmup_steps`, then falling linearly to 0 at `total_steps`. `xp` gives `minimum`/`maximum` (numpy, or
    keras.ops for a tensor step), so that both frameworks compute the same values."""
    up = step / warmup_steps if warmup_steps > 0 else 1.0
    down = (total_steps - step) / max(1, total_steps - warmup_steps)
    return xp.maximum(0.0, xp.minimum(up, down))


def total_steps(args: argparse.Namespace, steps_per_epoch: int) -> int:
    """Optimizer steps of the run: every epoch's, or --max-steps when that is fewer."""
    steps = steps_per_epoch * args.epochs
    return min(steps, args.max_steps) if args.max_steps > 0 else steps


def no_weight_decay(name: str) -> bool:
    """Whether a weight (by its PyTorch name, as `pt_named_weights()` gives them in Keras) is left out of
    weight decay: biases and LayerNorm weights."""
    return name.endswith(".bias") or "LayerNorm" in name


class KeepBest:
    """Evaluation each epoch, keeping the best: records every evaluation (epoch 0 = before training, never
    "best") and the training losses, and says when an epoch improves on the best so far. The monitored
    metric decides (`mode` "max" or "min"); on a tie, the lower eval loss. Writes `metrics.json`."""

    def __init__(self, output: str, monitor: str, mode: str, framework: str) -> None:
        self.output, self.monitor, self.mode, self.framework = output, monitor, mode, framework
        self.history: list[dict[str, Any]] = []
        self.train_loss: list[float] = []
        self.best: Optional[dict[str, Any]] = None

    def _key(self, record: dict[str, Any]) -> tuple[float, float]:
        value = record[self.monitor]
        return (value if self.mode == "max" else -value, -record["loss"])

    def update(self, epoch: int, step: int, results: dict[str, float]) -> bool:
        """Record an evaluation; True when it is the new best (then save the model)."""
        record = {"epoch": epoch, "step": step, **{k: float(v) for k, v in results.items()}}
        self.history.append(record)
        shown = " ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "step"))
        print(f"eval epoch {epoch} step {step} {shown}", flush=True)
        improved = epoch > 0 and (self.best is None or self._key(record) > self._key(self.best))
        if improved:
            self.best = record
        self.write()
        return improved

    def write(self) -> None:
        os.makedirs(self.output, exist_ok=True)
        with open(os.path.join(self.output, "metrics.json"), "w", encoding="utf-8") as fh:
            json.dump({"framework": self.framework, "monitor": self.monitor, "mode": self.mode,
                       "train_loss": self.train_loss, "eval": self.history, "best": self.best}, fh, indent=1)


def save_checkpoint(model: Any, tokenizer: DebertaTokenizerFast, output: str) -> None:
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)


# ============================================================================= PyTorch
def train_pytorch(model: Any, task: Task, args: argparse.Namespace, tokenizer: DebertaTokenizerFast) -> KeepBest:
    """A plain PyTorch loop: AdamW (no decay on biases and LayerNorm), linear warm-up then decay, gradient
    clipping, bfloat16 autocast with --amp, --grad-accum micro-batches per step, evaluation before training
    and after every epoch, and save_pretrained (model and tokenizer) of the best epoch into --output."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([
        {"params": [p for n, p in named if not no_weight_decay(n)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in named if no_weight_decay(n)], "weight_decay": 0.0},
    ], lr=args.lr)
    steps = total_steps(args, math.ceil(task.num_train_batches / args.grad_accum))
    warmup = int(args.warmup_ratio * steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: float(linear_warmup_decay(s, warmup, steps)))
    keeper = KeepBest(args.output, task.monitor, task.mode, "pytorch")

    def to_device(batch: dict[str, np.ndarray]) -> dict[str, Any]:
        return {key: torch.from_numpy(value).to(device) for key, value in batch.items()}

    def evaluate() -> dict[str, float]:
        model.eval()
        total, count, outputs = 0.0, 0, {name: [] for name in task.output_names}
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            for batch in array_batches(task.eval_inputs, args.batch_size):
                out = model(**to_device(batch))
                rows = len(batch["input_ids"])
                total, count = total + out.loss.item() * rows, count + rows
                for name in task.output_names:
                    outputs[name].append(out[name].float().cpu().numpy())
        return {"loss": total / count, **task.metrics({k: np.concatenate(v) for k, v in outputs.items()})}

    keeper.update(0, 0, evaluate())
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        batches = list(task.train_batches())
        for first in range(0, len(batches), args.grad_accum):
            group = batches[first: first + args.grad_accum]
            step_loss = 0.0
            for batch in group:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
                    loss = model(**to_device(batch)).loss / len(group)
                loss.backward()
                step_loss += loss.item()
            if args.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            keeper.train_loss.append(step_loss)
            print(f"step {step} loss {step_loss:.4f} lr {scheduler.get_last_lr()[0]:.3g}", flush=True)
            if step >= steps:
                break
        if keeper.update(epoch, step, evaluate()):
            save_checkpoint(model, tokenizer, args.output)
        if step >= steps:
            break
    return keeper


# ============================================================================= Keras
@functools.cache
def _keras_classes() -> dict[str, type]:
    import keras

    @keras.saving.register_keras_serializable(package="deberta_zoo_examples")
    class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
        """`peak_lr * linear_warmup_decay(step, ...)`: the PyTorch scripts' schedule, step for step."""

        def __init__(self, peak_lr: float, warmup_steps: int, total_steps: int) -> None:
            self.peak_lr, self.warmup_steps, self.total_steps = peak_lr, warmup_steps, total_steps

        def __call__(self, step):
            step = keras.ops.cast(step, "float32")
            return self.peak_lr * linear_warmup_decay(step, self.warmup_steps, self.total_steps, xp=keras.ops)

        def get_config(self) -> dict[str, Any]:
            return {"peak_lr": self.peak_lr, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}

    class SavePretrainedOnImprovement(keras.callbacks.Callback):
        """Evaluates before training and after every epoch (`evaluate(model)` -> metrics dict with "loss"),
        records the results in a KeepBest, and calls save_pretrained (model and tokenizer) when the
        monitored metric improves. Records the training loss Keras reports after every batch."""

        def __init__(self, keeper: KeepBest, evaluate: Callable[[Any], dict[str, float]],
                     tokenizer: Optional[DebertaTokenizerFast] = None) -> None:
            super().__init__()
            self.keeper, self.evaluate, self.tokenizer = keeper, evaluate, tokenizer
            self.step = 0

        def on_train_begin(self, logs=None):
            self.keeper.update(0, self.step, self.evaluate(self.model))

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if logs and "loss" in logs:
                self.keeper.train_loss.append(float(logs["loss"]))

        def on_epoch_end(self, epoch, logs=None):
            if self.keeper.update(epoch + 1, self.step, self.evaluate(self.model)):
                self.model.save_pretrained(self.keeper.output)
                if self.tokenizer is not None:
                    self.tokenizer.save_pretrained(self.keeper.output)

    class StopAfterSteps(keras.callbacks.Callback):
        """Ends `fit` after `steps` batches (the epoch's end callbacks, evaluation included, still run)."""

        def __init__(self, steps: int) -> None:
            super().__init__()
            self.steps, self.done = steps, 0

        def on_train_batch_end(self, batch, logs=None):
            self.done += 1
            if self.done >= self.steps:
                self.model.stop_training = True

    return {"LinearWarmupDecay": LinearWarmupDecay, "SavePretrainedOnImprovement": SavePretrainedOnImprovement,
            "StopAfterSteps": StopAfterSteps}


def __getattr__(name: str) -> Any:  # the Keras classes, created when first asked for
    if name in ("LinearWarmupDecay", "SavePretrainedOnImprovement", "StopAfterSteps"):
        return _keras_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def keras_datasets(task: Task, args: argparse.Namespace) -> tuple[Any, Any]:
    """(train, eval) tf.data pipelines of input dicts (labels included): fixed rows are sliced, shuffled
    each epoch and batched; masked-LM batches come from the task's generator (new masks every epoch)."""
    import tensorflow as tf

    if task.train_arrays is not None:
        n = task.num_train_rows
        train = tf.data.Dataset.from_tensor_slices(task.train_arrays).shuffle(n, seed=args.seed).batch(args.batch_size)
    else:
        signature = {k: tf.TensorSpec((None,) * v.ndim, tf.as_dtype(v.dtype)) for k, v in task.eval_inputs.items()}
        train = tf.data.Dataset.from_generator(task.train_batches, output_signature=signature)
        train = train.apply(tf.data.experimental.assert_cardinality(task.num_train_batches))
    evaluation = tf.data.Dataset.from_tensor_slices(task.eval_inputs).batch(args.batch_size)
    return train.prefetch(2), evaluation


def train_keras(model: Any, task: Task, args: argparse.Namespace, tokenizer: DebertaTokenizerFast) -> KeepBest:
    """compile (AdamW with the linear warm-up/decay schedule, no decay on biases and LayerNorm, global norm
    clipping; the model's own loss; XLA with --xla) and fit on tf.data, with SavePretrainedOnImprovement
    evaluating every epoch and saving the best into --output."""
    import keras

    classes = _keras_classes()
    train, evaluation = keras_datasets(task, args)
    steps = total_steps(args, task.num_train_batches)
    schedule = classes["LinearWarmupDecay"](args.lr, int(args.warmup_ratio * steps), steps)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=args.weight_decay, epsilon=1e-8,
                                       global_clipnorm=args.max_grad_norm if args.max_grad_norm > 0 else None)
    optimizer.exclude_from_weight_decay(var_list=[v for n, v in model.pt_named_weights().items() if no_weight_decay(n)])
    model.compile(optimizer=optimizer, jit_compile=args.xla)  # no loss: the model's own, from the labels

    def evaluate(trained: Any) -> dict[str, float]:
        loss = trained.evaluate(evaluation, verbose=0, return_dict=True)["loss"]
        outputs = trained.predict(evaluation, verbose=0)
        return {"loss": float(loss), **task.metrics({name: np.asarray(outputs[name]) for name in task.output_names})}

    keeper = KeepBest(args.output, task.monitor, task.mode, "keras")
    callbacks = [classes["SavePretrainedOnImprovement"](keeper, evaluate, tokenizer), classes["StopAfterSteps"](steps)]
    model.fit(train, epochs=args.epochs, callbacks=callbacks, verbose=2, shuffle=False)  # tf.data shuffles
    return keeper
