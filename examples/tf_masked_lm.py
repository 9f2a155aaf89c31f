"""Fine-tune DeBERTa with Keras (TensorFlow): masked-language modelling on plain text.

    python examples/tf_masked_lm.py --model deberta-zoo/tiny-mlm --whole-word-masking \
        --train tests/fixtures/tasks/mlm_train.txt --eval tests/fixtures/tasks/mlm_eval.txt \
        --output /tmp/tf_masked_lm --epochs 3 --batch-size 8 --lr 1e-3 [--xla]

Data: plain-text files (--train/--eval take one or more), one sentence or paragraph per line. Lines are
joined and cut into --max-length blocks (or one example per line with --line-by-line) and masked anew for
every batch: 15% of the tokens (--mlm-probability), of whole words with --whole-word-masking; 80% of those
become [MASK], 10% a random token, 10% stay. Metrics: eval loss and accuracy on the masked tokens.

Training (examples/common.py, train_keras): `compile` without a loss (the model trains on its own loss, from
the labels in the tf.data input dicts) with AdamW on a linear warm-up (--warmup-ratio) then linear decay,
global-norm clipping (--max-grad-norm), XLA with --xla, then `fit`; the SavePretrainedOnImprovement callback
evaluates before training and after every epoch and calls save_pretrained (model and tokenizer) into --output
when the monitored metric improves; metrics.json records the losses and evaluations. See docs/tasks.md.
"""

import keras

import common
from deberta_tf import TFDebertaForMaskedLM


def main(argv=None) -> None:
    args = common.argument_parser(__doc__, "keras", "masked_lm").parse_args(argv)
    keras.utils.set_random_seed(args.seed)  # dropout, and any weights the checkpoint lacks
    tokenizer = common.load_tokenizer(args)
    task = common.MaskedLM(args, tokenizer)
    model = TFDebertaForMaskedLM.from_pretrained(args.model)  # the checkpoint's masked-LM head, when it has one
    common.train_keras(model, task, args, tokenizer)


if __name__ == "__main__":
    main()
