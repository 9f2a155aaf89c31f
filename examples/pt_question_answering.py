"""Fine-tune DeBERTa with PyTorch: extractive question answering over long contexts.

    python examples/pt_question_answering.py --model deberta-zoo/tiny-mlm --max-length 64 --doc-stride 16 \
        --train tests/fixtures/tasks/qa_train.jsonl --eval tests/fixtures/tasks/qa_eval.jsonl \
        --output /tmp/pt_question_answering --epochs 3 --batch-size 8 --lr 1e-3

Data: JSON lines {"question", "context", "answers": {"text": [...], "answer_start": [...]}} (SQuAD style).
Contexts longer than a window are cut into windows of --max-length tokens overlapping by --doc-stride; the
answer of an example is the highest-scoring span over all its windows (--n-best start and end candidates,
at most --max-answer-length tokens), mapped back to the context through the offsets. Metrics: exact match
and F1 against the given answers.

Training (examples/common.py, train_pytorch): AdamW with a linear warm-up (--warmup-ratio) then linear decay,
gradient clipping (--max-grad-norm), bfloat16 autocast with --amp, gradient accumulation with --grad-accum,
evaluation before training and after every epoch; the best epoch's model and tokenizer are saved into
--output with save_pretrained, and metrics.json records the losses and evaluations. See docs/tasks.md.
"""

import torch

import common
from deberta_pt import DebertaForQuestionAnswering


def main(argv=None) -> None:
    args = common.argument_parser(__doc__, "pytorch", "question_answering").parse_args(argv)
    torch.manual_seed(args.seed)  # the new head's initialisation
    tokenizer = common.load_tokenizer(args)
    task = common.QuestionAnswering(args, tokenizer)
    # a new head for the task's labels (replacing a checkpoint's head of another size)
    model = DebertaForQuestionAnswering.from_pretrained(args.model, ignore_mismatched_sizes=True,
                                                        **task.model_overrides())
    common.train_pytorch(model, task, args, tokenizer)


if __name__ == "__main__":
    main()
