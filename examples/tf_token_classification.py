"""Fine-tune DeBERTa with Keras (TensorFlow): token classification (named entities): a BIO tag per word.

    python examples/tf_token_classification.py --model deberta-zoo/tiny-mlm \
        --train tests/fixtures/tasks/ner_train.jsonl --eval tests/fixtures/tasks/ner_eval.jsonl \
        --output /tmp/tf_token_classification --epochs 3 --batch-size 8 --lr 1e-3 [--xla]

Data: JSON lines {"tokens": [words], "tags": [BIO tags]}. The words are joined with single spaces, each
piece is mapped back to its word through the fast tokenizer's character offsets, and the word's label goes to
its first piece (-100 on the others). Metric: entity-level F1 (exact spans), plus token accuracy.

Training (examples/common.py, train_keras): `compile` without a loss (the model trains on its own loss, from
the labels in the tf.data input dicts) with AdamW on a linear warm-up (--warmup-ratio) then linear decay,
global-norm clipping (--max-grad-norm), XLA with --xla, then `fit`; the SavePretrainedOnImprovement callback
evaluates before training and after every epoch and calls save_pretrained (model and tokenizer) into --output
when the monitored metric improves; metrics.json records the losses and evaluations. See docs/tasks.md.
"""

import keras

import common
from deberta_tf import TFDebertaForTokenClassification


def main(argv=None) -> None:
    args = common.argument_parser(__doc__, "keras", "token_classification").parse_args(argv)
    keras.utils.set_random_seed(args.seed)  # the new head's initialisation, dropout, shuffling
    tokenizer = common.load_tokenizer(args)
    task = common.TokenClassification(args, tokenizer)
    # a new head for the task's labels (replacing a checkpoint's head of another size)
    model = TFDebertaForTokenClassification.from_pretrained(args.model, ignore_mismatched_sizes=True,
                                                            **task.model_overrides())
    common.train_keras(model, task, args, tokenizer)


if __name__ == "__main__":
    main()
