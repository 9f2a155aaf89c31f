"""Fine-tune TFDebertaForSequenceClassification under a tf.distribute strategy (Keras 3 compile/fit).

    python examples/tf_train_mirrored.py --strategy mirrored --model CKPT --train train.jsonl --output OUT
    python examples/tf_train_mirrored.py --strategy mirrored --cpu-devices 2 ...   # two logical CPUs
    TF_CONFIG='{...}' python examples/tf_train_mirrored.py --strategy multiworker ...   # on every worker
    python examples/tf_train_mirrored.py --strategy none ...                        # one device

train: JSON lines or CSV with a "text" and an integer "label" column. --batch-size is the global batch:
tf.distribute splits every batch over the replicas (and the workers), so a run on N replicas takes the same
steps as one device on the same global batch. The model is built, loaded and compiled inside
strategy.scope(); the checkpoint (config.json + tf_model.h5, with the tokenizer) is written by the chief
alone. See docs/distributed.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os


def read_rows(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        if path.endswith(".csv"):
            return list(csv.DictReader(fh))
        return [json.loads(line) for line in fh if line.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", choices=("mirrored", "multiworker", "none"), default="mirrored")
    parser.add_argument("--cpu-devices", type=int, default=0,
                        help="mirrored: split the CPU into N logical devices and mirror over them (no GPUs used)")
    parser.add_argument("--model", required=True, help="checkpoint folder (config.json + weights)")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: --model)")
    parser.add_argument("--train", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--num-labels", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="global batch, split over the replicas")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="XLA train steps (Keras's default: auto)")
    parser.add_argument("--no-dropout", action="store_true", help="dropout off (for exact comparisons)")
    parser.add_argument("--no-shuffle", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def make_strategy(args: argparse.Namespace):
    import tensorflow as tf

    if args.strategy == "none":
        return tf.distribute.get_strategy()  # the default strategy: one device, no replication
    if args.strategy == "multiworker":
        # Reads TF_CONFIG (cluster and this worker's task) and starts this worker's server.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if args.cpu_devices:
        return tf.distribute.MirroredStrategy([device.name for device in tf.config.list_logical_devices("CPU")])
    return tf.distribute.MirroredStrategy()  # every local GPU, or the CPU when there is none


def cluster_tasks(strategy) -> dict[str, list]:
    """The TF_CONFIG cluster of a multi-worker strategy ({} for the others)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver.cluster_spec().as_dict() if resolver is not None else {}


def is_chief(strategy) -> bool:
    """The one task that writes: the "chief", else worker 0 (the TF_CONFIG convention)."""
    cluster = cluster_tasks(strategy)
    if not cluster:
        return True
    resolver = strategy.cluster_resolver
    if "chief" in cluster:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def patch_for_multiworker(model, strategy) -> None:
    """Two workarounds for Keras 3's fit under MultiWorkerMirroredStrategy (seen up to Keras 3.15 / TF 2.21).

    1. Before training, Keras's TensorFlow trainer (`_maybe_symbolic_build`) takes the first distributed batch
       and mean-reduces it over the replicas to get one batch to build with. Across workers that reduction is
       a collective, which fails on a dict of inputs (keras-team/keras#20329: "Attempt to convert a value
       ({'input_ids': PerReplica...}) ... to a Tensor"). This model's variables all exist already: the local
       replica's part of the batch is enough to build the optimizer (and any compiled metric) from.
    2. After every step, Keras mean-reduces each log value across workers with `strategy.reduce("MEAN", v,
       axis=0)`, which fails on the scalar losses and metrics (tensorflow/tensorflow#72388: "Invalid
       reduction dimension 0 for input with 0 dimensions"). The train step returns them with shape (1,).
    """
    import tensorflow as tf

    base_build, base_step = type(model)._maybe_symbolic_build, model.train_step

    def symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v, next(it))
                break
        return base_build(model, data_batch=data_batch)

    def train_step(data):
        return {name: tf.reshape(value, [1]) for name, value in base_step(data).items()}

    model._maybe_symbolic_build = symbolic_build
    model.train_step = train_step


def main() -> None:
    args = parse_args()
    if args.cpu_devices and args.strategy != "mirrored":
        raise SystemExit("--cpu-devices goes with --strategy mirrored")

    import tensorflow as tf

    # Logical devices must be configured before anything initialises TensorFlow's devices.
    if args.cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.cpu_devices)
        tf.config.set_visible_devices([], "GPU")
    strategy = make_strategy(args)

    import keras

    from deberta_common import DebertaTokenizerFast
    from deberta_tf import TFDebertaForSequenceClassification

    replicas = strategy.num_replicas_in_sync
    if args.batch_size % replicas:
        raise SystemExit(f"--batch-size {args.batch_size} must divide evenly over {replicas} replicas")
    keras.utils.set_random_seed(args.seed)
    chief = is_chief(strategy)

    tokenizer = DebertaTokenizerFast.from_pretrained(args.tokenizer or args.model)
    overrides = dict(num_labels=args.num_labels)
    if args.no_dropout:
        overrides.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, cls_dropout=0.0)
    with strategy.scope():
        # Variables created here are mirrored on every replica; the checkpoint is assigned to all of them.
        model = TFDebertaForSequenceClassification.from_pretrained(
            args.model, ignore_mismatched_sizes=True, **overrides)
        if args.optimizer == "adamw":  # torch.optim.AdamW's defaults, as examples/pt_train_ddp.py uses them
            optimizer = keras.optimizers.AdamW(learning_rate=args.lr, weight_decay=0.01, epsilon=1e-8)
        else:
            optimizer = keras.optimizers.SGD(learning_rate=args.lr)
        jit = {"auto": "auto", "on": True, "off": False}[args.jit_compile]
        model.compile(optimizer=optimizer, jit_compile=jit)  # no loss: the model's own, from "labels"
    if len(cluster_tasks(strategy).get("chief", [])) + len(cluster_tasks(strategy).get("worker", [])) > 1:
        patch_for_multiworker(model, strategy)

    # Every worker builds the same dataset (same seed); tf.distribute gives each replica its slice of each
    # global batch. Batches are padded to their longest row.
    rows = read_rows(args.train)
    encoded = tokenizer([row["text"] for row in rows], truncation=True, max_length=args.max_length)
    features = {"input_ids": tf.ragged.constant(encoded["input_ids"], dtype=tf.int32),
                "attention_mask": tf.ragged.constant(encoded["attention_mask"], dtype=tf.int32)}
    if model.config.type_vocab_size > 0:
        features["token_type_ids"] = tf.ragged.constant(encoded["token_type_ids"], dtype=tf.int32)
    features["labels"] = tf.constant([int(row["label"]) for row in rows], dtype=tf.int32)
    dataset = tf.data.Dataset.from_tensor_slices(features)
    # from_tensor_slices of ragged tensors yields ragged rows; padded_batch needs dense ones.
    dataset = dataset.map(lambda x: {k: v.to_tensor() if isinstance(v, tf.RaggedTensor) else v for k, v in x.items()})
    if not args.no_shuffle:
        dataset = dataset.shuffle(len(rows), seed=args.seed, reshuffle_each_iteration=True)
    pad = {"input_ids": tokenizer.pad_token_id or 0, "attention_mask": 0, "token_type_ids": 0, "labels": 0}
    dataset = dataset.padded_batch(args.batch_size, padding_values={k: pad[k] for k in features},
                                   drop_remainder=True)
    dataset = dataset.repeat(args.epochs)  # each epoch reshuffled, as the PyTorch example does
    if args.max_steps:
        dataset = dataset.take(args.max_steps)
    steps = int(dataset.cardinality())
    if steps <= 0:
        raise SystemExit(f"no full batch of {args.batch_size} in {len(rows)} rows")
    dataset = dataset.prefetch(tf.data.AUTOTUNE)

    class StepLog(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if chief:
                print(f"step {batch + 1} mean loss {float(logs['loss']):.4f}", flush=True)

    if chief:
        print(f"strategy {args.strategy}: {replicas} replica(s), {steps} steps of {args.batch_size}", flush=True)
    model.fit(dataset, epochs=1, verbose=0, shuffle=False, callbacks=[StepLog()])

    if chief:  # the variables are in sync on every replica and worker: one writer is enough
        model.save_pretrained(args.output)
        tokenizer.save_pretrained(args.output)


if __name__ == "__main__":
    main()
