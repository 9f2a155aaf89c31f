"""Fine-tune DeBERTa with Keras (TensorFlow): text classification
(single_label, multi_label or regression).

    python examples/tf_text_classification.py --model deberta-zoo/tiny-mlm --task single_label \
        --train tests/fixtures/tasks/sentiment_train.csv --eval tests/fixtures/tasks/sentiment_eval.csv \
        --output /tmp/tf_text_classification --epochs 3 --batch-size 8 --lr 1e-3 [--xla]

Data: CSV (with a header) or JSON lines; a `text` column, a `text_pair` column used when every row has
one, and `label` (a class name or integer; a number for regression) or, for multi_label, `labels` (a list of
class names; in CSV one cell with the names separated by "|"). Column names: --text-column,
--text-pair-column, --label-column. Metric: accuracy (single_label), micro F1 (multi_label), MSE (regression).

Training (examples/common.py, train_keras): `compile` without a loss (the model trains on its own loss, from
the labels in the tf.data input dicts) with AdamW on a linear warm-up (--warmup-ratio) then linear decay,
global-norm clipping (--max-grad-norm), XLA with --xla, then `fit`; the SavePretrainedOnImprovement callback
evaluates before training and after every epoch and calls save_pretrained (model and tokenizer) into --output
when the monitored metric improves; metrics.json records the losses and evaluations. See docs/tasks.md.
"""

import keras

import common
from deberta_tf import TFDebertaForSequenceClassification


def main(argv=None) -> None:
    args = common.argument_parser(__doc__, "keras", "text_classification").parse_args(argv)
    keras.utils.set_random_seed(args.seed)  # the new head's initialisation, dropout, shuffling
    tokenizer = common.load_tokenizer(args)
    task = common.TextClassification(args, tokenizer)
    # a new head for the task's labels (replacing a checkpoint's head of another size)
    model = TFDebertaForSequenceClassification.from_pretrained(args.model, ignore_mismatched_sizes=True,
                                                               **task.model_overrides())
    common.train_keras(model, task, args, tokenizer)


if __name__ == "__main__":
    main()
