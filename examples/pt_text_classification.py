"""Fine-tune DeBERTa with PyTorch: text classification
(single_label, multi_label or regression).

    python examples/pt_text_classification.py --model deberta-zoo/tiny-mlm --task single_label \
        --train tests/fixtures/tasks/sentiment_train.csv --eval tests/fixtures/tasks/sentiment_eval.csv \
        --output /tmp/pt_text_classification --epochs 3 --batch-size 8 --lr 1e-3

Data: CSV (with a header) or JSON lines; a `text` column, a `text_pair` column used when every row has
one, and `label` (a class name or integer; a number for regression) or, for multi_label, `labels` (a list of
class names; in CSV one cell with the names separated by "|"). Column names: --text-column,
--text-pair-column, --label-column. Metric: accuracy (single_label), micro F1 (multi_label), MSE (regression).

Training (examples/common.py, train_pytorch): AdamW with a linear warm-up (--warmup-ratio) then linear decay,
gradient clipping (--max-grad-norm), bfloat16 autocast with --amp, gradient accumulation with --grad-accum,
evaluation before training and after every epoch; the best epoch's model and tokenizer are saved into
--output with save_pretrained, and metrics.json records the losses and evaluations. See docs/tasks.md.
"""

import torch

import common
from deberta_pt import DebertaForSequenceClassification


def main(argv=None) -> None:
    args = common.argument_parser(__doc__, "pytorch", "text_classification").parse_args(argv)
    torch.manual_seed(args.seed)  # the new head's initialisation
    tokenizer = common.load_tokenizer(args)
    task = common.TextClassification(args, tokenizer)
    # a new head for the task's labels (replacing a checkpoint's head of another size)
    model = DebertaForSequenceClassification.from_pretrained(args.model, ignore_mismatched_sizes=True,
                                                             **task.model_overrides())
    common.train_pytorch(model, task, args, tokenizer)


if __name__ == "__main__":
    main()
