"""Fine-tune DeBERTa with Keras (TensorFlow): extractive question answering over long contexts.

    python examples/tf_question_answering.py --model deberta-zoo/tiny-mlm --max-length 64 --doc-stride 16 \
        --train tests/fixtures/tasks/qa_train.jsonl --eval tests/fixtures/tasks/qa_eval.jsonl \
        --output /tmp/tf_question_answering --epochs 3 --batch-size 8 --lr 1e-3 [--xla]

Data: JSON lines {"question", "context", "answers": {"text": [...], "answer_start": [...]}} (SQuAD style).
Contexts longer than a window are cut into windows of --max-length tokens overlapping by --doc-stride; the
answer of an example is the highest-scoring span over all its windows (--n-best start and end candidates,
at most --max-answer-length tokens), mapped back to the context through the offsets. Metrics: exact match
and F1 against the given answers.

Training (examples/common.py, train_keras): `compile` without a loss (the model trains on its own loss, from
the labels in the tf.data input dicts) with AdamW on a linear warm-up (--warmup-ratio) then linear decay,
global-norm clipping (--max-grad-norm), XLA with --xla, then `fit`; the SavePretrainedOnImprovement callback
evaluates before training and after every epoch and calls save_pretrained (model and tokenizer) into --output
when the monitored metric improves; metrics.json records the losses and evaluations. See docs/tasks.md.
"""

import keras

import common
from deberta_tf import TFDebertaForQuestionAnswering


def main(argv=None) -> None:
    args = common.argument_parser(__doc__, "keras", "question_answering").parse_args(argv)
    keras.utils.set_random_seed(args.seed)  # the new head's initialisation, dropout, shuffling
    tokenizer = common.load_tokenizer(args)
    task = common.QuestionAnswering(args, tokenizer)
    # a new head for the task's labels (replacing a checkpoint's head of another size)
    model = TFDebertaForQuestionAnswering.from_pretrained(args.model, ignore_mismatched_sizes=True,
                                                          **task.model_overrides())
    common.train_keras(model, task, args, tokenizer)


if __name__ == "__main__":
    main()
