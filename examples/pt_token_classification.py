"""Fine-tune DeBERTa with PyTorch: token classification (named entities): a BIO tag per word.

    python examples/pt_token_classification.py --model deberta-zoo/tiny-mlm \
        --train tests/fixtures/tasks/ner_train.jsonl --eval tests/fixtures/tasks/ner_eval.jsonl \
        --output /tmp/pt_token_classification --epochs 3 --batch-size 8 --lr 1e-3

Data: JSON lines {"tokens": [words], "tags": [BIO tags]}. The words are joined with single spaces, each
piece is mapped back to its word through the fast tokenizer's character offsets, and the word's label goes to
its first piece (-100 on the others). Metric: entity-level F1 (exact spans), plus token accuracy.

Training (examples/common.py, train_pytorch): AdamW with a linear warm-up (--warmup-ratio) then linear decay,
gradient clipping (--max-grad-norm), bfloat16 autocast with --amp, gradient accumulation with --grad-accum,
evaluation before training and after every epoch; the best epoch's model and tokenizer are saved into
--output with save_pretrained, and metrics.json records the losses and evaluations. See docs/tasks.md.
"""

import torch

import common
from deberta_pt import DebertaForTokenClassification


def main(argv=None) -> None:
    args = common.argument_parser(__doc__, "pytorch", "token_classification").parse_args(argv)
    torch.manual_seed(args.seed)  # the new head's initialisation
    tokenizer = common.load_tokenizer(args)
    task = common.TokenClassification(args, tokenizer)
    # a new head for the task's labels (replacing a checkpoint's head of another size)
    model = DebertaForTokenClassification.from_pretrained(args.model, ignore_mismatched_sizes=True,
                                                          **task.model_overrides())
    common.train_pytorch(model, task, args, tokenizer)


if __name__ == "__main__":
    main()
