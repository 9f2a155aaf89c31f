import numpy as np
import pytest

from deberta_common import data, metrics


def test_mask_tokens_rates_and_labels():
    rng = np.random.default_rng(0)
    ids = rng.integers(10, 1000, size=(64, 128))
    special = np.zeros_like(ids)
    special[:, 0] = special[:, -1] = 1
    masked, labels = data.mask_tokens(ids, special, mask_token_id=4, vocab_size=1000, rng=rng, probability=0.15)
    chosen = labels != -100
    assert not chosen[:, 0].any() and not chosen[:, -1].any()  # special tokens are never chosen
    assert np.array_equal(labels[chosen], ids[chosen])
    assert np.array_equal(masked[~chosen], ids[~chosen])  # nothing else changes
    assert abs(chosen[:, 1:-1].mean() - 0.15) < 0.01
    share_mask = (masked[chosen] == 4).mean()
    share_kept = (masked[chosen] == ids[chosen]).mean()
    assert abs(share_mask - 0.8) < 0.03 and abs(share_kept - 0.1) < 0.03 + 1 / 1000


def test_whole_word_masking_masks_every_piece_of_a_word():
    tokens = ["[CLS]", "\u0120un", "believ", "able", "\u0120story", "!", "[SEP]"]
    special = [1, 0, 0, 0, 0, 0, 1]
    word_ids = data.word_ids_from_tokens(tokens, special)
    assert word_ids == [None, 0, 0, 0, 1, 1, None]
    rng = np.random.default_rng(3)
    ids = np.tile(np.arange(100, 107), (200, 1))
    _, labels = data.mask_tokens(ids, np.tile(special, (200, 1)), 4, 1000, rng, 0.5, [word_ids] * 200)
    chosen = labels != -100
    assert (chosen[:, 1:4].all(1) | ~chosen[:, 1:4].any(1)).all()  # a word is chosen whole or not at all
    assert (chosen[:, 4:6].all(1) | ~chosen[:, 4:6].any(1)).all()
    assert 0.3 < chosen[:, 1].mean() < 0.7


def test_align_labels():
    word_ids = [None, 0, 0, 1, 2, 2, 2, None]
    assert data.align_labels(word_ids, [3, 1, 2]) == [-100, 3, -100, 1, 2, -100, -100, -100]
    assert data.align_labels(word_ids, [3, 1, 2], label_all_pieces=True) == [-100, 3, 3, 1, 2, 2, 2, -100]


def test_pad_batch():
    assert data.pad_batch([[1, 2, 3], [4]], 0).tolist() == [[1, 2, 3], [4, 0, 0]]
    assert data.pad_batch([[1, 2, 3], [4]], 9, length=2).tolist() == [[1, 2], [4, 9]]


def test_best_answer_recovers_known_spans():
    context = "The cat sat on the mat near the door."
    # offsets of a made-up tokenisation: [CLS] q [SEP] then context words
    words = [(0, 3), (4, 7), (8, 11), (12, 14), (15, 18), (19, 22), (23, 27), (28, 31), (32, 37)]
    feature = {"offset_mapping": [None, None, None] + words + [None]}
    start = np.full(13, -5.0)
    end = np.full(13, -5.0)
    start[3 + 4], end[3 + 5] = 5.0, 4.0  # "the mat"
    start[0] = end[0] = 9.0  # the [CLS] is not a context token: never an answer
    answer = data.best_answer([start], [end], [feature], context)
    assert answer["text"] == "the mat" and (answer["start"], answer["end"]) == (15, 22)
    # end before start is not allowed; the max answer length applies
    start2, end2 = np.full(13, -5.0), np.full(13, -5.0)
    start2[3 + 6], end2[3 + 2] = 6.0, 6.0
    end2[3 + 8] = 1.0
    assert data.best_answer([start2], [end2], [feature], context)["text"] == "near the door."
    assert data.best_answer([start2], [end2], [feature], context, max_answer_length=2)["text"] != "near the door."
    # of two windows the better-scoring one wins
    other = np.full(13, -9.0)
    assert data.best_answer([other, start], [other, end], [feature, feature], context)["text"] == "the mat"


def test_accuracy_and_f1():
    assert metrics.accuracy([1, 0, 1, 1], [1, 0, 0, -100]) == pytest.approx(2 / 3)
    # class 0: tp 1 fp 1 fn 0 -> 2/3; class 1: tp 1 fp 0 fn 1 -> 2/3
    assert metrics.f1([0, 0, 1], [0, 1, 1]) == pytest.approx(2 / 3)
    assert metrics.f1([0, 0, 1], [0, 1, 1], average="micro") == pytest.approx(2 / 3)
    assert metrics.multi_label_f1(np.array([[0.9, 0.2], [0.7, 0.8]]), np.array([[1, 0], [0, 1]])) == pytest.approx(0.8)


def test_squad_metrics():
    assert metrics.exact_match("The Cat!", ["cat"]) == 1.0
    assert metrics.exact_match("a dog", ["cat"]) == 0.0
    assert metrics.span_f1("the big cat", ["cat sat"]) == pytest.approx(2 * 0.5 * 0.5 / 1.0)
    assert metrics.span_f1("", [""]) == 1.0


def test_entity_f1_seqeval_style():
    assert metrics.entity_spans(["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-PER"]) == {
        ("PER", 0, 2), ("LOC", 3, 5), ("PER", 5, 6)}
    assert metrics.entity_spans(["I-ORG", "I-ORG", "O"]) == {("ORG", 0, 2)}  # IOB1-style start
    labels = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"]]
    predictions = [["B-PER", "I-PER", "O", "O"], ["O", "B-LOC"]]
    result = metrics.entity_f1(predictions, labels)
    assert result["precision"] == pytest.approx(1 / 2) and result["recall"] == pytest.approx(1 / 3)
    assert result["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))


def test_qa_windows_map_the_answer_back_through_offsets():
    import os

    from deberta_common import DebertaTokenizerFast

    tokenizer = DebertaTokenizerFast.from_pretrained(os.path.join(os.path.dirname(__file__), "fixtures", "gpt2"))
    filler = " ".join(f"word{i}" for i in range(60))
    context = f"{filler} The treaty was signed in Paris in 1783. {filler}"
    answer_text = "Paris in 1783"
    answer_start = context.index(answer_text)
    features = data.prepare_qa_features(tokenizer, "Where was it signed?", context, max_length=64, stride=16,
                                        answer_start=answer_start, answer_text=answer_text)
    assert len(features) > 3
    assert all(len(f["input_ids"]) <= 64 for f in features)
    holding = [f for f in features if f["start_positions"] != 0]
    assert holding  # some window holds the whole answer
    for feature in features:
        ids = feature["input_ids"]
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert feature["token_type_ids"].count(1) == sum(o is not None for o in feature["offset_mapping"]) + 1
        if feature["start_positions"]:
            s, e = feature["start_positions"], feature["end_positions"]
            begin, finish = feature["offset_mapping"][s][0], feature["offset_mapping"][e][1]
            assert context[begin:finish] == answer_text
    # logits that point at the answer in one window give the answer text back
    start_logits, end_logits = [], []
    for feature in features:
        starts, ends = np.zeros(len(feature["input_ids"])), np.zeros(len(feature["input_ids"]))
        if feature is holding[0]:
            starts[feature["start_positions"]] = ends[feature["end_positions"]] = 10.0
        start_logits.append(starts)
        end_logits.append(ends)
    assert data.best_answer(start_logits, end_logits, features, context)["text"] == answer_text
    with pytest.raises(ValueError, match="stride"):
        data.prepare_qa_features(tokenizer, "q", context, max_length=32, stride=40)


def test_masked_lm_collator_with_a_real_tokenizer():
    import os

    from deberta_common import DebertaTokenizerFast

    tokenizer = DebertaTokenizerFast.from_pretrained(os.path.join(os.path.dirname(__file__), "fixtures", "gpt2"))
    examples = tokenizer(["an unbelievable story about tokenization", "short one"])["input_ids"]
    for whole_word in (False, True):
        batch = data.MaskedLMCollator(tokenizer, probability=0.5, whole_word=whole_word, seed=0)(examples)
        assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
        assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()  # padding is never a target
        assert (batch["labels"][:, 0] == -100).all()  # nor is [CLS]
        assert (batch["labels"] != -100).any()
