"""What only DebertaTokenizerFast has: character offsets, tokenizer.json, and the `tokenizers` pipeline itself."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deberta_common import DebertaTokenizer, DebertaTokenizerFast, TokenizerError

GPT2_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gpt2")


@pytest.fixture(scope="module")
def fast() -> DebertaTokenizerFast:
    return DebertaTokenizerFast.from_pretrained(GPT2_DIR)


# ---------------------------------------------------------------------------------------------------------------
# Offsets
# ---------------------------------------------------------------------------------------------------------------


def test_offsets_leave_out_the_folded_space(fast):
    text = "Hello world  x\n\ny [MASK]"
    enc = fast(text, return_offsets_mapping=True)
    tokens = fast.convert_ids_to_tokens(enc.input_ids)
    assert tokens == ["[CLS]", "Hello", "Ġworld", "Ġ", "Ġx", "Ċ", "Ċ", "y", "[MASK]", "[SEP]"]
    assert enc.offset_mapping == [(0, 0), (0, 5), (6, 11), (12, 12), (13, 14), (14, 15), (15, 16), (16, 17), (18, 24),
                                  (0, 0)]  # fmt: skip
    # A lone "Ġ" gets an empty span; [MASK] does not cover the space it took.
    assert [text[s:e] for s, e in enc.offset_mapping] == ["", "Hello", "world", "", "x", "\n", "\n", "y", "[MASK]", ""]


def test_offsets_of_multibyte_characters(fast):
    text = "é😀 日本"
    enc = fast(text, add_special_tokens=False, return_offsets_mapping=True)
    # Tokens holding part of a character point at the whole character.
    for token_id, (start, end) in zip(enc.input_ids, enc.offset_mapping):
        piece = fast.decode([token_id])
        if "\ufffd" in piece:
            assert end - start == 1
        else:
            assert text[start:end] == piece.strip(" ")
    assert enc.offset_mapping[0] == (0, 1) and enc.offset_mapping[-1][1] == len(text)


def test_offsets_of_pairs_batches_and_padding(fast):
    enc = fast(["Hello world", "a"], ["x y", "b"], padding=True, return_offsets_mapping=True)
    assert enc.offset_mapping[0] == [(0, 0), (0, 5), (6, 11), (0, 0), (0, 1), (2, 3), (0, 0)]
    assert enc.offset_mapping[1] == [(0, 0), (0, 1), (0, 0), (0, 1), (0, 0), (0, 0), (0, 0)]
    tensors = fast(["Hello world", "a"], padding=True, return_offsets_mapping=True, return_tensors="np")
    assert tensors.offset_mapping.shape == (2, 4, 2) and tensors.offset_mapping.dtype == np.int64
    assert fast("abc", return_offsets_mapping=True, truncation=True, max_length=2).offset_mapping == [(0, 0), (0, 0)]
    single = fast("Hello world", return_offsets_mapping=True, return_tensors="np")
    assert single.offset_mapping.tolist() == [[[0, 0], [0, 5], [6, 11], [0, 0]]]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40))
def test_property_offsets_point_at_the_token_text(fast, text):
    enc = fast(text, add_special_tokens=False, return_offsets_mapping=True)
    for token_id, (start, end) in zip(enc.input_ids, enc.offset_mapping):
        piece = fast.decode([token_id])
        if "\ufffd" in piece:  # part of a character: the span is the character(s) holding those bytes
            raw = bytes(fast._byte_decoder[c] for c in fast.convert_ids_to_tokens(token_id))
            assert start < end and raw.strip(b" ") in text[start:end].encode("utf-8")
        else:
            assert text[start:end] == piece.strip(" ")


def test_slow_tokenizer_has_no_offsets():
    slow = DebertaTokenizer.from_pretrained(GPT2_DIR)
    with pytest.raises(NotImplementedError, match="DebertaTokenizerFast"):
        slow("Hello", return_offsets_mapping=True)


def test_word_ids(fast):
    enc = fast("Hello world, [MASK]!", "a b")
    assert enc.word_ids() == [None, 0, 1, 2, 3, 4, None, 0, 1, None]
    with_offsets = fast("Hello world, [MASK]!", "a b", return_offsets_mapping=True)
    assert with_offsets.word_ids() == enc.word_ids()
    assert fast(["x", "y z"], padding=True).word_ids(1) == [None, 0, 1, None]


# ---------------------------------------------------------------------------------------------------------------
# The tokenizers pipeline and tokenizer.json
# ---------------------------------------------------------------------------------------------------------------


def test_backend_pipeline_gives_the_same_encodings(fast):
    backend = fast.backend_tokenizer
    for a, b in [("Hello world", None), ("Hello [MASK] wörld", "😀 pair"), ("", "x")]:
        ours = fast(a, b)
        theirs = backend.encode(a, b) if b is not None else backend.encode(a)
        assert theirs.ids == ours.input_ids and theirs.type_ids == ours.token_type_ids
        assert theirs.attention_mask == ours.attention_mask
        assert backend.decode(theirs.ids, skip_special_tokens=False) == fast.decode(ours.input_ids)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.integers(0, 50261), max_size=8))
def test_property_decode_matches_tokenizers_decoder(fast, ids):
    # Invalid UTF-8 is replaced the same way (one U+FFFD per maximal invalid subsequence) in Python and Rust.
    assert fast.decode(ids) == fast.backend_tokenizer.decode(ids, skip_special_tokens=False)


def test_tokenizer_json_alone(fast, tmp_path):
    fast.save_pretrained(tmp_path)
    os.remove(tmp_path / "vocab.json")
    os.remove(tmp_path / "merges.txt")
    loaded = DebertaTokenizerFast.from_pretrained(tmp_path)
    assert loaded("Hello [MASK] world").input_ids == fast("Hello [MASK] world").input_ids
    assert loaded.vocab_size == 50257 and len(loaded) == 50262
    with pytest.raises(TokenizerError, match="has no vocab.json"):
        DebertaTokenizer.from_pretrained(tmp_path)
    loaded.save_vocabulary(tmp_path)  # vocab.json and merges.txt come back from tokenizer.json
    assert DebertaTokenizer.from_pretrained(tmp_path)("Hello").input_ids == fast("Hello").input_ids


def test_tokenizer_json_formats_and_checks(fast, tmp_path):
    fast.save_pretrained(tmp_path)
    path = tmp_path / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    # tokenizers < 0.20 wrote merges as "a b" strings.
    data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    path.write_text(json.dumps(data), encoding="utf-8")
    assert DebertaTokenizerFast.from_pretrained(tmp_path)("Hello world").input_ids == [50257, 15496, 995, 50258]

    data["model"]["vocab"]["Hello"], data["model"]["vocab"]["Ġworld"] = 995, 15496
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="different vocabularies"):
        DebertaTokenizerFast.from_pretrained(tmp_path)

    data["model"]["vocab"]["Hello"], data["model"]["vocab"]["Ġworld"] = 15496, 995
    data["added_tokens"].append({"id": 50262, "content": "<extra>", "special": False})
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="<extra>.*not supported"):
        DebertaTokenizerFast.from_pretrained(tmp_path)

    path.write_text(json.dumps({"model": {"type": "WordPiece", "vocab": {}}}), encoding="utf-8")
    with pytest.raises(TokenizerError, match="BPE model"):
        DebertaTokenizerFast.from_pretrained(tmp_path)


def test_added_tokens_decoder_must_agree(tmp_path):
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(GPT2_DIR, name), tmp_path / name)
    with open(tmp_path / "tokenizer_config.json", "w") as fh:
        json.dump({"added_tokens_decoder": {"50257": {"content": "[MASK]"}}}, fh)
    for cls in (DebertaTokenizer, DebertaTokenizerFast):
        with pytest.raises(TokenizerError, match=r"'\[MASK\]' has id 50257.*gives it 50261"):
            cls.from_pretrained(tmp_path)


def test_constructor_needs_files(tmp_path):
    with pytest.raises(TokenizerError, match="vocab_file and merges_file, or tokenizer_file"):
        DebertaTokenizerFast()
    with pytest.raises(TokenizerError, match="vocabulary file not found"):
        DebertaTokenizerFast(tmp_path / "vocab.json", tmp_path / "merges.txt")
