"""DebertaTokenizer (pure Python) and DebertaTokenizerFast (tokenizers): shared behaviour, checked on both.

Vocabulary: the real GPT-2 files in tests/fixtures/gpt2 (what DeBERTa v1 uses), plus the hand-made vocabulary
of the reference (Hugging Face) test suite. Offsets and tokenizer.json are in test_tokenization_fast.py.
"""

from __future__ import annotations

import json
import os
import pickle
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deberta_common import BatchEncoding, DebertaTokenizer, DebertaTokenizerFast, TokenizerError
from deberta_common._unicode_tables import LETTER_RANGES, NUMBER_RANGES
from deberta_common.tokenization import gpt2_pattern
from deberta_common.tokenization_utils import bytes_to_unicode

GPT2_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gpt2")
CLASSES = [DebertaTokenizer, DebertaTokenizerFast]
IDS = ["slow", "fast"]


@pytest.fixture(scope="module")
def slow() -> DebertaTokenizer:
    return DebertaTokenizer.from_pretrained(GPT2_DIR)


@pytest.fixture(scope="module")
def fast() -> DebertaTokenizerFast:
    return DebertaTokenizerFast.from_pretrained(GPT2_DIR)


@pytest.fixture(scope="module", params=CLASSES, ids=IDS)
def tok(request, slow, fast):
    return slow if request.param is DebertaTokenizer else fast


def write_files(folder, vocab, merges: list[str]) -> tuple[str, str]:
    vocab_file, merges_file = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    with open(vocab_file, "w", encoding="utf-8") as fh:
        fh.write(vocab if isinstance(vocab, str) else json.dumps(vocab))
    with open(merges_file, "w", encoding="utf-8") as fh:
        fh.write("\n".join(merges))
    return vocab_file, merges_file


# The hand-made vocabulary of the reference test suite (transformers' tests/models/deberta).
TOY_VOCAB = ["l", "o", "w", "e", "r", "s", "t", "i", "d", "n", "\u0120", "\u0120l", "\u0120n", "\u0120lo", "\u0120low",
             "er", "\u0120lowest", "\u0120newer", "\u0120wider", "[UNK]"]  # fmt: skip
TOY_MERGES = ["#version: 0.2", "\u0120 l", "\u0120l o", "\u0120lo w", "e r", ""]


@pytest.fixture(params=CLASSES, ids=IDS)
def toy(request, tmp_path):
    vocab_file, merges_file = write_files(tmp_path, {t: i for i, t in enumerate(TOY_VOCAB)}, TOY_MERGES)
    return request.param(vocab_file, merges_file, unk_token="[UNK]")


# ---------------------------------------------------------------------------------------------------------------
# Known tokenisations
# ---------------------------------------------------------------------------------------------------------------


def test_reference_suite_toy_vocabulary(toy):
    tokens = toy.tokenize("lower newer")
    assert tokens == ["l", "o", "w", "er", "\u0120", "n", "e", "w", "er"]
    assert toy.convert_tokens_to_ids(tokens + [toy.unk_token]) == [0, 1, 2, 15, 10, 9, 3, 2, 15, 19]


def test_known_gpt2_ids(tok):
    # Ids published with GPT-2 (e.g. the transformers GPT2Tokenizer docstring: "Hello world" -> [15496, 995],
    # " Hello world" -> [18435, 995]); "\n" is 198, "\n\n" 628, " " 220, "." 13, "," 11 in every GPT-2 table.
    assert tok.encode("Hello world", add_special_tokens=False) == [15496, 995]
    assert tok.encode(" Hello world", add_special_tokens=False) == [18435, 995]
    assert tok.encode("\n", add_special_tokens=False) == [198]
    assert tok.encode("\n\n", add_special_tokens=False) == [628]
    assert tok.encode(" ", add_special_tokens=False) == [220]
    assert tok.encode(".", add_special_tokens=False) == [13]
    assert tok.encode(",", add_special_tokens=False) == [11]
    assert tok.convert_ids_to_tokens(50256) == "<|endoftext|>"


def test_single_token_words_are_vocab_lookups(tok):
    # Any pre-tokenised piece that is itself a vocabulary entry must come out as that one id, whatever the merges.
    vocab = json.load(open(os.path.join(GPT2_DIR, "vocab.json"), encoding="utf-8"))
    for word in [" the", " The", "the", " and", " tokenizer", " 2019", " don", "'t", " café", "ing"]:
        piece = "".join(bytes_to_unicode()[b] for b in word.encode("utf-8"))
        if piece in vocab:
            assert tok.encode(word, add_special_tokens=False) == [vocab[piece]], word
    assert tok.encode(" the", add_special_tokens=False) == [262]


def test_contractions_and_pretokenisation(tok):
    assert tok.tokenize("don't") == ["don", "'t"]
    assert tok.tokenize("we'll") == ["we", "'ll"]
    # The contraction patterns are lower case only, as in GPT-2.
    assert tok.tokenize("DON'T") == ["DON", "'", "T"]
    assert tok.tokenize("a  b") == ["a", "Ġ", "Ġb"]  # \s+(?!\S) keeps the last space for the word
    assert tok.tokenize("x\t\ny") == ["x", "ĉ", "Ċ", "y"]
    assert tok.tokenize("2024 abc123") == ["20", "24", "Ġab", "c", "123"]


def test_special_tokens_are_appended_in_reference_order(tok, tmp_path):
    assert tok.vocab_size == 50257 and len(tok) == 50262
    assert [tok.cls_token_id, tok.sep_token_id, tok.unk_token_id, tok.pad_token_id, tok.mask_token_id] == [
        50257, 50258, 50259, 50260, 50261,
    ]  # fmt: skip
    assert tok.bos_token_id == tok.cls_token_id and tok.eos_token_id == tok.sep_token_id
    vocab = tok.get_vocab()
    assert len(vocab) == 50262 and vocab["[MASK]"] == 50261 and vocab["Hello"] == 15496


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_special_tokens_in_vocab_keep_their_ids(cls, tmp_path):
    vocab = {t: i for i, t in enumerate(TOY_VOCAB)}  # [UNK] = 19
    vocab["[PAD]"] = 20
    vocab_file, merges_file = write_files(tmp_path, vocab, TOY_MERGES)
    tok = cls(vocab_file, merges_file)
    assert tok.unk_token_id == 19 and tok.pad_token_id == 20
    assert [tok.cls_token_id, tok.sep_token_id, tok.mask_token_id] == [21, 22, 23]
    assert tok.vocab_size == 21 and len(tok) == 24
    assert tok("low [PAD]").input_ids == [21, 0, 1, 2, 10, 20, 22]


def test_token_attributes(tok):
    assert (tok.cls_token, tok.sep_token, tok.unk_token, tok.pad_token, tok.mask_token) == (
        "[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]",
    )  # fmt: skip
    assert (tok.bos_token, tok.eos_token) == ("[CLS]", "[SEP]")
    assert tok.model_input_names == ["input_ids", "token_type_ids", "attention_mask"]
    assert tok.padding_side == "right"
    assert tok.all_special_tokens == ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"]
    assert sorted(tok.all_special_ids) == list(range(50257, 50262))


# ---------------------------------------------------------------------------------------------------------------
# Special tokens written in the text
# ---------------------------------------------------------------------------------------------------------------


def test_special_tokens_inside_text(tok):
    assert tok.tokenize("Hello [MASK]") == ["Hello", "[MASK]"]  # [MASK] takes the space before it
    assert tok.tokenize("Hello \t\n [MASK]!") == ["Hello", "[MASK]", "!"]
    assert tok.tokenize("a [SEP]") == ["a", "Ġ", "[SEP]"]  # the others do not
    assert tok.tokenize("[CLS]x[SEP]y[PAD][UNK]") == ["[CLS]", "x", "[SEP]", "y", "[PAD]", "[UNK]"]
    assert tok.tokenize("[MASK][MASK] [MASK]") == ["[MASK]", "[MASK]", "[MASK]"]
    assert tok.tokenize("[MAS K] [mask]") == ["[", "MAS", "ĠK", "]", "Ġ[", "mask", "]"]
    # U+001C..U+001F are not Unicode White_Space (Python's isspace() says they are): [MASK] does not take them.
    assert tok.tokenize("x\x1c[MASK]") == ["x", "Ĝ", "[MASK]"]
    assert tok.tokenize("x\u3000[MASK]") == ["x", "[MASK]"]
    ids = tok("Hello [MASK] world").input_ids
    assert ids == [tok.cls_token_id, 15496, tok.mask_token_id, 995, tok.sep_token_id]


def test_add_prefix_space(tmp_path):
    for cls in CLASSES:
        tok = cls.from_pretrained(GPT2_DIR, add_prefix_space=True)
        assert tok.add_prefix_space
        assert tok.encode("Hello world", add_special_tokens=False) == [18435, 995]
        assert tok.encode(" Hello world", add_special_tokens=False) == [18435, 995]  # no second space
        # As tokenizers' ByteLevel does: every piece between special tokens gets the space.
        assert tok.tokenize("[CLS]Hello") == ["[CLS]", "ĠHello"]
        assert tok.tokenize("") == []
        assert tok.tokenize("\tx") == ["Ġ", "ĉ", "x"]  # only " " counts as a prefix space


# ---------------------------------------------------------------------------------------------------------------
# Slow == fast, and decode(encode(text)) == text, on every kind of text
# ---------------------------------------------------------------------------------------------------------------

TEXTS = {
    "empty": "",
    "space": " ",
    "ascii": "The quick brown fox jumps over the lazy dog.",
    "accents": "Héllo wörld, façade, naïve, São Paulo, Ærøskøbing, ǅemal",
    "combining": "e\u0301 a\u0308 n\u0303 \u1100\u1161\u11a8",
    "cjk": "日本語のテキストと中文文本和한국어 텍스트",
    "rtl": "مرحبا بالعالم שלום עולם",
    "emoji": "😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷 ❤️ 🫠",
    "zero_width": "zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffbom",
    "control": "ctrl\x00\x01\x07\x08\x1b\x1c\x1f\x7f\x80\x9f end",
    "unicode_spaces": "a\u00a0b\u2003c\u3000d\u2028e\u2029f\x85g\u202fh",
    "whitespace_runs": "   lots   of    spaces  \t\t tabs \n\n\n newlines \r\n crlf  ",
    "only_whitespace": " \t\n \u3000 ",
    "contractions": "I'm, you're, he's, we've, they'll, she'd, don't, O'Neil's 'quoted'",
    "numbers": "1234567890 3.14159 -42 1,000,000 ²³ ½ ٣٤٥ ０１２ Ⅻ",
    "url": "https://example.com/path/to?query=1&b=%20x#frag mailto:a.b@c.org",
    "code": "def f(x: int) -> int:\n    return x ** 2  # square\n\tif (a&&b) { c[i] = d->e; }",
    "symbols": "©®™ §¶ ∑∫∂ ≤≥≠ ←→ ♠♣ €£¥ «»„“",
    "astral": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 𓀀 𝟘𝟙 𞤀",
    "unicode16": "\u1c89\u1c8a \U00010d40\U00010d41 \U000105c0",  # letters/digits new in Unicode 16
    "unassigned": "\u0378\U000e0080\U0010fffd\uffff",
    "long_word": "a" * 300 + "é" * 50 + "supercalifragilisticexpialidocious" * 20,
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_slow_and_fast_agree_and_round_trip(slow, fast, name):
    text = TEXTS[name]
    for special in (False, True):
        a = slow(text, add_special_tokens=special, return_special_tokens_mask=True)
        b = fast(text, add_special_tokens=special, return_special_tokens_mask=True)
        assert dict(a) == dict(b)
        assert a.word_ids() == b.word_ids()
    ids = slow.encode(text, add_special_tokens=False)
    assert slow.decode(ids) == fast.decode(ids) == text
    assert slow.tokenize(text) == fast.tokenize(text)


def test_very_long_text(slow, fast):
    rng = random.Random(0)
    words = ["the", "tokenizer", "ünïcödé", "日本", "😀", "123", "\n", "  ", "co-op", "x" * 70]
    text = " ".join(rng.choice(words) for _ in range(40_000))
    ids = slow.encode(text, add_special_tokens=False)
    assert ids == fast.encode(text, add_special_tokens=False)
    assert slow.decode(ids) == text and len(ids) > 40_000
    # Long runs that a backtracking regex could rescan from every position.
    for text in [" " * 100_000 + "[MASK]", " \t" * 50_000 + "x", "!" * 100_000, "a" * 100_000]:
        assert slow.encode(text) == fast.encode(text)


def test_long_word_merges_match_short_word_merges(slow):
    # Words from 48 symbols on go through the heap merge; both paths must give the same tokens.
    rng = random.Random(1)
    for _ in range(200):
        word = "".join(rng.choice("aeinrst lo") for _ in range(rng.randint(2, 120)))
        symbols = list(word.replace(" ", "Ġ"))
        scan = list(symbols)
        slow._merge_scan(scan)
        assert slow._merge_heap(list(symbols)) == scan, word


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_property_random_unicode(slow, fast, text):
    ids = slow.encode(text, add_special_tokens=False)
    assert fast.encode(text, add_special_tokens=False) == ids
    assert slow.decode(ids) == fast.decode(ids) == text
    assert slow(text).word_ids() == fast(text).word_ids()


PIECES = st.sampled_from(["[MASK]", " [MASK]", "[CLS]", "[SEP]", " ", "  ", "\n", "\t", "a", "é", "'s", "😀", "1"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(PIECES, st.text(max_size=8)), max_size=12))
def test_property_special_tokens_and_whitespace(slow, fast, parts):
    text = "".join(parts)
    a, b = slow(text, return_special_tokens_mask=True), fast(text, return_special_tokens_mask=True)
    assert dict(a) == dict(b) and a.word_ids() == b.word_ids()
    assert slow.decode(a.input_ids) == fast.decode(a.input_ids)


def test_unicode_classes_match_tokenizers():
    """The frozen \\p{L}/\\p{N}/\\s classes split like tokenizers does: every BMP code point, both ends of every
    astral range of the tables, and a sample of the rest (`python -m deberta_common._unicode_tables` redoes
    them all)."""
    from tokenizers import pre_tokenizers

    rust = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True).pre_tokenize_str
    table, pattern = bytes_to_unicode(), gpt2_pattern()
    astral = {cp for a, b in LETTER_RANGES + NUMBER_RANGES for cp in (a - 1, a, b, b + 1) if cp > 0xFFFF}
    astral |= set(random.Random(2).sample(range(0x10000, 0x110000), 3000))
    cps = [cp for cp in range(0x10000) if not 0xD800 <= cp < 0xE000] + sorted(c for c in astral if c < 0x110000)
    for start in range(0, len(cps), 8192):
        text = "".join(f"a{c}1{c} {c}." for c in map(chr, cps[start : start + 8192]))
        ours = [p.encode("utf-8").decode("latin-1").translate(table) for p in pattern.findall(text)]
        assert ours == [p for p, _ in rust(text)], f"code points from U+{cps[start]:04X}"


# ---------------------------------------------------------------------------------------------------------------
# Pairs, truncation, padding, batches
# ---------------------------------------------------------------------------------------------------------------


def n_tokens(n: int) -> str:
    """A text of exactly n GPT-2 tokens ("a" then " a" ...)."""
    return "" if n == 0 else "a" + " a" * (n - 1)


def reference_longest_first(len_a: int, len_b: int, remove: int) -> tuple[int, int]:
    # The reference (transformers' truncate_sequences) loop, one token at a time.
    for _ in range(remove):
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_pair_layout(tok):
    enc = tok("Hello world", "a b", return_special_tokens_mask=True)
    assert enc.input_ids == [50257, 15496, 995, 50258, 64, 275, 50258]
    assert enc.token_type_ids == [0, 0, 0, 0, 1, 1, 1]
    assert enc.attention_mask == [1] * 7
    assert enc.special_tokens_mask == [1, 0, 0, 1, 0, 0, 1]
    assert enc.sequence_ids() == [None, 0, 0, None, 1, 1, None]
    plain = tok("Hello world", "a b", add_special_tokens=False)
    assert plain.input_ids == [15496, 995, 64, 275] and plain.token_type_ids == [0, 0, 1, 1]
    assert tok("a", "").input_ids == [50257, 64, 50258, 50258]


def test_longest_first_matches_reference_loop(tok):
    for len_a in range(0, 7):
        for len_b in range(0, 7):
            for max_length in range(3, len_a + len_b + 5):
                enc = tok(n_tokens(len_a), n_tokens(len_b), truncation="longest_first", max_length=max_length)
                expected = reference_longest_first(len_a, len_b, max(0, len_a + len_b + 3 - max_length))
                assert enc.sequence_ids().count(0) == expected[0], (len_a, len_b, max_length)
                assert enc.sequence_ids().count(1) == expected[1], (len_a, len_b, max_length)
                assert len(enc.input_ids) == min(max_length, len_a + len_b + 3)
                assert enc.input_ids[-1] == tok.sep_token_id


def test_truncation_strategies(tok):
    a, b = n_tokens(6), "b" + " b" * 3  # 6 and 4 tokens
    assert tok(a, b, truncation=True, max_length=9) == tok(a, b, truncation="longest_first", max_length=9)
    first = tok(a, b, truncation="only_first", max_length=9)
    assert first.sequence_ids().count(0) == 2 and first.sequence_ids().count(1) == 4
    second = tok(a, b, truncation="only_second", max_length=12)
    assert second.sequence_ids().count(0) == 6 and second.sequence_ids().count(1) == 3
    for off in (False, "do_not_truncate"):
        assert len(tok(a, b, truncation=off, max_length=5).input_ids) == 13
    # max_length alone truncates (longest_first), as in the reference; with padding="max_length" it does not.
    assert len(tok(a, b, max_length=5).input_ids) == 5
    assert len(tok(a, b, padding="max_length", max_length=5).input_ids) == 13
    # Single texts, with and without special tokens.
    assert tok(a, truncation=True, max_length=4).input_ids == [50257, 64, 257, 50258]
    assert tok(a, truncation=True, max_length=4, add_special_tokens=False).input_ids == [64, 257, 257, 257]
    assert tok(a, truncation="only_first", max_length=3).input_ids == [50257, 64, 50258]
    # No max_length and no model_max_length: nothing to truncate or pad to (a warning, as in the reference).
    with pytest.warns(UserWarning, match="truncation needs max_length"):
        assert len(tok(a, truncation=True).input_ids) == 8
    with pytest.warns(UserWarning, match="padding='max_length' needs max_length"):
        assert len(tok(a, padding="max_length").input_ids) == 8


def test_truncation_that_cannot_fit(tok):
    a, b = n_tokens(6), n_tokens(2)
    with pytest.raises(TokenizerError, match="only_second.*second text has only 2"):
        tok(a, b, truncation="only_second", max_length=6)
    with pytest.raises(TokenizerError, match="only_first.*first text has only 6"):
        tok(a, n_tokens(9), truncation="only_first", max_length=8)
    with pytest.raises(TokenizerError, match="needs pairs"):
        tok(a, truncation="only_second", max_length=4)
    with pytest.raises(TokenizerError, match="smaller than the 3 special tokens"):
        tok(a, b, truncation=True, max_length=2)
    with pytest.raises(TokenizerError, match="only_first"):  # in a batch too
        tok([a, a], [b, n_tokens(9)], truncation="only_first", max_length=8)


def test_model_max_length_is_the_default_max_length(tmp_path):
    for cls in CLASSES:
        tok = cls.from_pretrained(GPT2_DIR, model_max_length=5)
        assert len(tok(n_tokens(10), truncation=True).input_ids) == 5
        assert len(tok(n_tokens(10)).input_ids) == 12  # truncation is still opt-in
        assert tok("a", padding="max_length").attention_mask == [1, 1, 1, 0, 0]


def test_padding(tok):
    texts = ["Hello world", "a", "a b c d"]
    longest = tok(texts, padding=True)
    assert longest == tok(texts, padding="longest")
    assert [len(r) for r in longest.input_ids] == [6, 6, 6]
    assert longest.input_ids[1] == [50257, 64, 50258, 50260, 50260, 50260]
    assert longest.attention_mask[1] == [1, 1, 1, 0, 0, 0]
    assert longest.token_type_ids[1] == [0] * 6
    fixed = tok(texts, padding="max_length", max_length=8, return_special_tokens_mask=True)
    assert [len(r) for r in fixed.input_ids] == [8, 8, 8]
    assert fixed.special_tokens_mask[1] == [1, 0, 1, 1, 1, 1, 1, 1]
    assert tok(texts, padding=True, pad_to_multiple_of=4).attention_mask[0] == [1] * 4 + [0] * 4
    assert tok(texts, padding=False).input_ids[1] == [50257, 64, 50258]
    assert tok(texts, padding="do_not_pad") == tok(texts)
    # A single text is its own longest; max_length pads it.
    assert tok("a", padding=True).input_ids == [50257, 64, 50258]
    assert tok("a", padding="max_length", max_length=5).input_ids == [50257, 64, 50258, 50260, 50260]
    # Pairs with padding: pad tokens are type 0.
    pair = tok(["a", "a b c"], ["b", "c"], padding=True)
    assert pair.token_type_ids[0] == [0, 0, 0, 1, 1, 0, 0]


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_left_padding(cls):
    tok = cls.from_pretrained(GPT2_DIR)
    tok.padding_side = "left"
    enc = tok(["a", "a b"], ["x", "y"], padding=True)
    assert enc.input_ids[0] == [50260, 50257, 64, 50258, 87, 50258]
    assert enc.attention_mask[0] == [0, 1, 1, 1, 1, 1]
    assert enc.token_type_ids[0] == [0, 0, 0, 0, 1, 1]
    assert enc.word_ids(0) == [None, None, 0, None, 0, None]


def test_batches(tok):
    texts = ["Hello world", "", "日本語 😀", "a [MASK] b"]
    batch = tok(texts)
    assert isinstance(batch, BatchEncoding)
    assert batch.input_ids == [tok(t).input_ids for t in texts]
    assert batch.token_type_ids == [tok(t).token_type_ids for t in texts]
    pairs = [("Hello", "world"), ("a", "b c")]
    as_tuples = tok(pairs)
    as_lists = tok([p[0] for p in pairs], [p[1] for p in pairs])
    assert as_tuples == as_lists
    assert as_tuples.input_ids[1] == tok("a", "b c").input_ids
    assert tok(("x", "y")).input_ids == [tok("x").input_ids, tok("y").input_ids]  # a tuple of str is a batch
    assert tok([]) == {"input_ids": [], "token_type_ids": [], "attention_mask": []}
    assert tok.batch_decode(batch.input_ids, skip_special_tokens=True) == texts[:3] + ["a b"]


def test_return_flags(tok):
    enc = tok("ab", return_token_type_ids=False, return_attention_mask=False, return_length=True)
    assert set(enc) == {"input_ids", "length"} and enc.length == 3
    assert list(tok("ab")) == ["input_ids", "token_type_ids", "attention_mask"]
    assert tok.encode("a", "b") == [50257, 64, 50258, 65, 50258]


# ---------------------------------------------------------------------------------------------------------------
# Tensors
# ---------------------------------------------------------------------------------------------------------------


def test_return_tensors_numpy(tok):
    enc = tok("Hello world", return_tensors="np")
    assert enc.input_ids.shape == (1, 4) and enc.input_ids.dtype == np.int64
    assert enc.input_ids.tolist() == [[50257, 15496, 995, 50258]]
    batch = tok(["Hello world", "a"], ["x", "y z"], padding=True, return_tensors="np", return_special_tokens_mask=True)
    assert {k: v.shape for k, v in batch.items()} == {k: (2, 6) for k in batch}
    assert all(v.dtype == np.int64 for v in batch.values())
    assert tok.encode(["a b", "c d"], return_tensors="np").shape == (2, 4)
    assert tok([], return_tensors="np").input_ids.shape == (0, 0)


def test_return_tensors_torch(tok):
    torch = pytest.importorskip("torch")
    enc = tok(["Hello world", "a"], padding=True, return_tensors="pt")
    assert isinstance(enc.input_ids, torch.Tensor) and enc.input_ids.dtype == torch.int64
    assert tuple(enc.attention_mask.shape) == (2, 4)
    assert tok("a", return_tensors="pt").input_ids.tolist() == [[50257, 64, 50258]]
    assert tok.decode(enc.input_ids[0]) == "[CLS]Hello world[SEP]"
    assert tok.batch_decode(enc.input_ids, skip_special_tokens=True) == ["Hello world", "a"]


def test_return_tensors_tensorflow(slow, fast):
    tf = pytest.importorskip("tensorflow")
    for tok in (slow, fast):
        enc = tok(["Hello world", "a"], padding=True, return_tensors="tf")
        assert isinstance(enc.input_ids, tf.Tensor) and enc.input_ids.dtype == tf.int64
        assert enc.input_ids.shape == (2, 4) and enc.token_type_ids.shape == (2, 4)
        assert tok("a", return_tensors="tf").input_ids.numpy().tolist() == [[50257, 64, 50258]]
        assert tok.decode(enc.input_ids[0]) == "[CLS]Hello world[SEP]"


def test_ragged_tensors_need_padding(tok):
    with pytest.raises(TokenizerError, match="padding=True"):
        tok(["Hello world", "a"], return_tensors="np")
    with pytest.raises(TokenizerError, match="return_tensors"):
        tok("a", return_tensors="jax")


# ---------------------------------------------------------------------------------------------------------------
# Decoding and conversions
# ---------------------------------------------------------------------------------------------------------------


def test_decode(tok):
    ids = tok("Hello [MASK] world.").input_ids
    assert tok.decode(ids) == "[CLS]Hello[MASK] world.[SEP]"
    assert tok.decode(ids, skip_special_tokens=True) == "Hello world."
    assert tok.decode(np.array(ids)) == tok.decode(ids)
    assert tok.decode(995) == " world"
    assert tok.decode(tok.encode("I do n't know .", add_special_tokens=False), clean_up_tokenization_spaces=True) == (
        "I don't know."
    )
    # Bytes that are not valid UTF-8 on their own become U+FFFD (errors="replace").
    emoji = tok.encode("😀", add_special_tokens=False)
    assert len(emoji) > 1 and tok.decode(emoji[:1]) == "\ufffd"
    assert tok.decode(emoji[1:] + emoji) == "\ufffd" * len(tok.decode(emoji[1:])) + "😀"
    assert tok.decode([]) == ""


def test_conversions(tok):
    assert tok.convert_tokens_to_ids("Hello") == 15496
    assert tok.convert_tokens_to_ids(["Hello", "Ġworld", "no-such-token"]) == [15496, 995, tok.unk_token_id]
    assert tok.convert_ids_to_tokens([15496, 995, 50261]) == ["Hello", "Ġworld", "[MASK]"]
    assert tok.convert_ids_to_tokens([50257, 15496], skip_special_tokens=True) == ["Hello"]
    assert tok.convert_tokens_to_string(["Hello", "[MASK]", "Ġworld", "ĊĠ"]) == "Hello[MASK] world\n "
    with pytest.raises(TokenizerError, match="token id 50262 is not in the vocabulary"):
        tok.decode([1, 50262])
    with pytest.raises(TokenizerError, match="integers"):
        tok.decode([[1, 2]])


def test_special_token_helpers(tok):
    assert tok.build_inputs_with_special_tokens([5, 6]) == [50257, 5, 6, 50258]
    assert tok.build_inputs_with_special_tokens([5], [7, 8]) == [50257, 5, 50258, 7, 8, 50258]
    assert tok.create_token_type_ids_from_sequences([5, 6]) == [0, 0, 0, 0]
    assert tok.create_token_type_ids_from_sequences([5], [7, 8]) == [0, 0, 0, 1, 1, 1]
    assert tok.get_special_tokens_mask([5, 6]) == [1, 0, 0, 1]
    assert tok.get_special_tokens_mask([5], [7, 8]) == [1, 0, 1, 0, 0, 1]
    assert tok.get_special_tokens_mask([50257, 5, 50261, 50258], already_has_special_tokens=True) == [1, 0, 1, 1]
    assert tok.num_special_tokens_to_add() == 2 and tok.num_special_tokens_to_add(pair=True) == 3


def test_batch_encoding_object(tok):
    enc = tok(["Hello world", "a"], ["x", "y"])
    assert enc.input_ids is enc["input_ids"]
    with pytest.raises(AttributeError):
        enc.no_such_field
    assert enc.word_ids(0) == [None, 0, 1, None, 0, None]
    assert enc.word_ids(1) == [None, 0, None, 0, None]
    with pytest.raises(TokenizerError, match="batch_index 2 is out of range"):
        enc.word_ids(2)
    assert pickle.loads(pickle.dumps(enc)) == enc


# ---------------------------------------------------------------------------------------------------------------
# Save / load
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("saver", CLASSES, ids=IDS)
@pytest.mark.parametrize("loader", CLASSES, ids=IDS)
def test_save_and_load_round_trip(saver, loader, tmp_path):
    original = saver.from_pretrained(GPT2_DIR, add_prefix_space=True, model_max_length=64)
    paths = original.save_pretrained(tmp_path / "saved")
    names = sorted(os.path.basename(p) for p in paths)
    expected = ["merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"]
    assert names == sorted(expected + (["tokenizer.json"] if saver is DebertaTokenizerFast else []))
    loaded = loader.from_pretrained(tmp_path / "saved")
    assert loaded.add_prefix_space and loaded.model_max_length == 64
    assert loaded.get_vocab() == original.get_vocab()
    text = "Hello [MASK] wörld 😀\n"
    assert loaded(text).input_ids == original(text).input_ids
    config = json.load(open(tmp_path / "saved" / "tokenizer_config.json", encoding="utf-8"))
    assert config["added_tokens_decoder"]["50261"]["content"] == "[MASK]"
    assert config["added_tokens_decoder"]["50261"]["lstrip"] is True


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_custom_special_tokens_round_trip(cls, tmp_path):
    vocab_file, merges_file = write_files(tmp_path, {t: i for i, t in enumerate(TOY_VOCAB)}, TOY_MERGES)
    tok = cls(vocab_file, merges_file, cls_token="<s>", bos_token="<s>", sep_token="</s>", eos_token="</s>",
              mask_token="<mask>")  # fmt: skip
    assert tok.tokenize("low <mask>") == ["l", "o", "w", "<mask>"]
    assert [tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id] == [20, 21, 22, 23]
    tok.save_pretrained(tmp_path / "out")
    again = cls.from_pretrained(tmp_path / "out")
    assert again.special_tokens_map == tok.special_tokens_map
    assert again("low <mask>").input_ids == [20, 0, 1, 2, 23, 21]


def test_save_vocabulary(tok, tmp_path):
    vocab_path, merges_path = tok.save_vocabulary(tmp_path, filename_prefix="x")
    assert os.path.basename(vocab_path) == "x-vocab.json" and os.path.basename(merges_path) == "x-merges.txt"
    assert json.load(open(vocab_path, encoding="utf-8")) == json.load(open(os.path.join(GPT2_DIR, "vocab.json")))
    with open(merges_path, encoding="utf-8") as fh, open(os.path.join(GPT2_DIR, "merges.txt"), encoding="utf-8") as ref:
        assert fh.read().split("\n")[1:] == ref.read().split("\n")[1:]
    with pytest.raises(TokenizerError, match="not a directory"):
        tok.save_vocabulary(tmp_path / "missing")


def test_hugging_face_style_config_is_read(tmp_path):
    write_files(tmp_path, {t: i for i, t in enumerate(TOY_VOCAB)}, TOY_MERGES)
    with open(tmp_path / "tokenizer_config.json", "w") as fh:
        json.dump({"model_max_length": 1000000000000000019884624838656, "add_prefix_space": True,
                   "do_lower_case": False, "mask_token": {"__type": "AddedToken", "content": "[M]", "lstrip": True}},
                  fh)  # fmt: skip
    with open(tmp_path / "special_tokens_map.json", "w") as fh:
        json.dump({"pad_token": {"content": "<pad>", "lstrip": False}}, fh)
    for cls in CLASSES:
        tok = cls.from_pretrained(tmp_path)
        assert tok.model_max_length is None and tok.add_prefix_space
        assert tok.mask_token == "[M]" and tok.pad_token == "<pad>"
        assert cls.from_pretrained(tmp_path, pad_token="[P]").pad_token == "[P]"


# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_missing_files(cls, tmp_path):
    with pytest.raises(TokenizerError, match="not found"):
        cls.from_pretrained(tmp_path / "nope")
    with pytest.raises(TokenizerError, match="has no vocab.json"):
        cls.from_pretrained(tmp_path)
    write_files(tmp_path, {"a": 0}, ["#version: 0.2"])
    os.remove(tmp_path / "merges.txt")
    with pytest.raises(TokenizerError, match="has no merges.txt"):
        cls.from_pretrained(tmp_path)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_bad_files(cls, tmp_path):
    vocab = {t: i for i, t in enumerate(TOY_VOCAB)}
    write_files(tmp_path, vocab, ["#version: 0.2", "\u0120 l", "e r x", "l o"])
    with pytest.raises(TokenizerError, match=r"merges.txt, line 3: expected two tokens"):
        cls.from_pretrained(tmp_path)
    write_files(tmp_path, vocab, ["#version: 0.2", "\u0120 l", "l o"])
    with pytest.raises(TokenizerError, match=r"merges.txt, line 3: 'lo'.*not in the vocabulary"):
        cls.from_pretrained(tmp_path)
    write_files(tmp_path, json.dumps(TOY_VOCAB), TOY_MERGES)
    with pytest.raises(TokenizerError, match="vocab.json: expected a JSON object.*got list"):
        cls.from_pretrained(tmp_path)
    write_files(tmp_path, '{"a": 0, "b": ', TOY_MERGES)
    with pytest.raises(TokenizerError, match="vocab.json: not valid JSON"):
        cls.from_pretrained(tmp_path)
    write_files(tmp_path, {"a": 0, "b": 0}, ["#version: 0.2"])
    with pytest.raises(TokenizerError, match="share the id 0"):
        cls.from_pretrained(tmp_path)
    write_files(tmp_path, {"a": 0, "b": "1"}, ["#version: 0.2"])
    with pytest.raises(TokenizerError, match="'b' must be a non-negative integer"):
        cls.from_pretrained(tmp_path)
    write_files(tmp_path, {"a": 0, "b": 5}, ["#version: 0.2"])
    with pytest.raises(TokenizerError, match="ids are not 0..1"):
        cls.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "bad, message",
    [
        (b"bytes", "text must be a str, a list of str or a list of \\(str, str\\) pairs, got bytes"),
        (None, "got NoneType"),
        (12, "got int"),
        (["ok", b"no"], r"text\[1\] must be a str, got bytes"),
        ([("a", None)], r"text\[0\]\[1\] must be a str, got NoneType"),
        ([("a", "b", "c")], r"text\[0\] must be a \(text, text_pair\) pair, got 3 items"),
        ("bad \ud800 surrogate", "lone surrogate at index 4"),
    ],
)
def test_bad_text(tok, bad, message):
    with pytest.raises(TokenizerError, match=message):
        tok(bad)


def test_bad_arguments(tok):
    with pytest.raises(TokenizerError, match="text_pair must be a str"):
        tok("a", b"b")
    with pytest.raises(TokenizerError, match="same length"):
        tok(["a", "b"], ["c"])
    with pytest.raises(TokenizerError, match="padding must be"):
        tok("a", padding="max")
    with pytest.raises(TokenizerError, match="truncation must be"):
        tok("a", truncation="first")
    with pytest.raises(TokenizerError, match="max_length must be"):
        tok("a", max_length=-1)
    with pytest.raises(TokenizerError, match="pad_to_multiple_of"):
        tok("a", pad_to_multiple_of=0)


# ---------------------------------------------------------------------------------------------------------------
# Optional: the Hugging Face reference itself (not installed in the project's environment)
# ---------------------------------------------------------------------------------------------------------------


def test_against_transformers(slow):
    transformers = pytest.importorskip("transformers")
    files = os.path.join(GPT2_DIR, "vocab.json"), os.path.join(GPT2_DIR, "merges.txt")
    reference = transformers.DebertaTokenizer(*files)
    for text in TEXTS.values():
        assert slow(text).input_ids == reference(text)["input_ids"]
        assert slow(text, "pair text").input_ids == reference(text, "pair text")["input_ids"]
