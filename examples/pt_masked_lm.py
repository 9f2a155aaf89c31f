"""Fine-tune DeBERTa with PyTorch: masked-language modelling on plain text.

    python examples/pt_masked_lm.py --model deberta-zoo/tiny-mlm --whole-word-masking \
        --train tests/fixtures/tasks/mlm_train.txt --eval tests/fixtures/tasks/mlm_eval.txt \
        --output /tmp/pt_masked_lm --epochs 3 --batch-size 8 --lr 1e-3

Data: plain-text files (--train/--eval take one or more), one sentence or paragraph per line. Lines are
joined and cut into --max-length blocks (or one example per line with --line-by-line) and masked anew for
every batch: 15% of the tokens (--mlm-probability), of whole words with --whole-word-masking; 80% of those
become [MASK], 10% a random token, 10% stay. Metrics: eval loss and accuracy on the masked tokens.

Training (examples/common.py, train_pytorch): AdamW with a linear warm-up (--warmup-ratio) then linear decay,
gradient clipping (--max-grad-norm), bfloat16 autocast with --amp, gradient accumulation with --grad-accum,
evaluation before training and after every epoch; the best epoch's model and tokenizer are saved into
--output with save_pretrained, and metrics.json records the losses and evaluations. See docs/tasks.md.
"""

import torch

import common
from deberta_pt import DebertaForMaskedLM


def main(argv=None) -> None:
    args = common.argument_parser(__doc__, "pytorch", "masked_lm").parse_args(argv)
    torch.manual_seed(args.seed)  # dropout, and any weights the checkpoint lacks
    tokenizer = common.load_tokenizer(args)
    task = common.MaskedLM(args, tokenizer)
    model = DebertaForMaskedLM.from_pretrained(args.model)  # the checkpoint's masked-LM head, when it has one
    common.train_pytorch(model, task, args, tokenizer)


if __name__ == "__main__":
    main()
