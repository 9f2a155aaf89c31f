"""`DebertaTokenizer`: DeBERTa (v1)'s GPT-2 byte-level BPE tokenizer in pure Python (standard library + numpy).

It splits text exactly like `DebertaTokenizerFast` / the `tokenizers` library: the GPT-2 pre-tokenisation
regex with the Unicode classes that `tokenizers` uses (see `_unicode_tables`), special tokens found in the text
first, `[MASK]` taking the whitespace before it, and BPE merges applied lowest rank first, leftmost first.
"""

from __future__ import annotations

import heapq
import os
import re
from typing import Any, Iterator

from ._unicode_tables import LETTER_RANGES, NUMBER_RANGES, WHITESPACE
from .tokenization_utils import DebertaTokenizerBase, bytes_to_unicode, read_merges, read_vocab

# Past this many symbols a word is merged with a heap (O(n log n)) instead of rescanning it per merge (O(n^2)).
_HEAP_BPE_MIN_SYMBOLS = 48
# The piece -> ids cache is dropped when it grows past this, so that a long stream of unique words cannot
# grow it forever.
_CACHE_SIZE = 200_000
_WHITESPACE = frozenset(WHITESPACE)


def _char_class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(re.escape(chr(a)) + ("" if a == b else "-" + re.escape(chr(b))) for a, b in ranges)


def _split_planes(ranges: tuple[tuple[int, int], ...]) -> tuple[str, str]:
    bmp = tuple((a, min(b, 0xFFFF)) for a, b in ranges if a <= 0xFFFF)
    astral = tuple((max(a, 0x10000), b) for a, b in ranges if b > 0xFFFF)
    return _char_class(bmp), _char_class(astral)


def gpt2_pattern() -> re.Pattern[str]:
    r"""GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` for `re`.

    Python's `re` scans a class holding code points above U+FFFF range by range, but looks BMP-only classes up
    in a bitmap; so each class is split in a BMP part and an astral part guarded by a one-range lookahead.
    That makes this as fast as the `regex` module on the same pattern.
    """
    letters_bmp, letters_astral = _split_planes(LETTER_RANGES)
    numbers_bmp, numbers_astral = _split_planes(NUMBER_RANGES)
    space = re.escape(WHITESPACE)
    astral = "(?=[\U00010000-\U0010ffff])"
    letter = f"(?:[{letters_bmp}]|{astral}[{letters_astral}])"
    number = f"(?:[{numbers_bmp}]|{astral}[{numbers_astral}])"
    other_bmp = f"[^{letters_bmp}{numbers_bmp}{space}\U00010000-\U0010ffff]"
    other = f"(?:{other_bmp}|{astral}(?![{letters_astral}{numbers_astral}]).)"
    return re.compile(
        f"'s|'t|'re|'ve|'m|'ll|'d| ?{letter}+| ?{number}+| ?{other}+|[{space}]+(?![^{space}])|[{space}]+", re.DOTALL
    )


class DebertaTokenizer(DebertaTokenizerBase):
    """DeBERTa (v1) tokenizer: GPT-2 byte-level BPE from vocab.json + merges.txt, in pure Python.

    Gives the same ids, token types, masks and decodes as `DebertaTokenizerFast` for any input; see
    docs/tokenizers.md for the call surface (shared with the fast tokenizer).
    """

    is_fast = False

    def __init__(
        self,
        vocab_file: str | os.PathLike,
        merges_file: str | os.PathLike,
        *,
        errors: str = "replace",
        bos_token: str = "[CLS]",
        eos_token: str = "[SEP]",
        sep_token: str = "[SEP]",
        cls_token: str = "[CLS]",
        unk_token: str = "[UNK]",
        pad_token: str = "[PAD]",
        mask_token: str = "[MASK]",
        add_prefix_space: bool = False,
        model_max_length: int | None = None,
    ):
        vocab = read_vocab(vocab_file)
        merges = read_merges(merges_file, vocab)
        special = dict(bos_token=bos_token, eos_token=eos_token, sep_token=sep_token, cls_token=cls_token,
                       unk_token=unk_token, pad_token=pad_token, mask_token=mask_token)  # fmt: skip
        self._setup(vocab, merges, errors=errors, special_tokens=special, add_prefix_space=add_prefix_space,
                    model_max_length=model_max_length)  # fmt: skip
        self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        # str.translate of the text's Latin-1 view maps each UTF-8 byte to its byte-level character.
        self._byte_table = bytes_to_unicode()
        self._pattern = gpt2_pattern()
        # tokenizers only knows an unknown-token id when the token is in the BPE model's own vocabulary.
        self._bpe_unk = vocab.get(self.unk_token)
        self._all_bytes_known = all(c in vocab for c in self._byte_table.values())
        specials = sorted(self.all_special_tokens, key=len, reverse=True)  # longest match first
        self._special_pattern = re.compile("|".join(map(re.escape, specials)))
        self._cache: dict[str, list[int]] = {}

    # -- text -> ids -------------------------------------------------------------------------------------------

    def _encode_batch(self, texts: list[str], with_offsets: bool) -> tuple[list[list[int]], list[Any]]:
        return [self._encode_text(t) for t in texts], texts

    def _word_ids(self, handle: str) -> list[int]:
        words: list[int] = []
        self._encode_text(handle, words)
        return words

    def _segments(self, text: str) -> Iterator[tuple[int | None, str]]:
        """(special token id or None, text) pieces: the text split around special tokens written in it."""
        start = 0
        for match in self._special_pattern.finditer(text):
            token, begin = match.group(), match.start()
            if token == self.mask_token:
                # [MASK] takes the whitespace before it. Walking back from the match (not a regex with a
                # leading \s*, which rescans a long run of spaces from every position) keeps this linear.
                while begin > start and text[begin - 1] in _WHITESPACE:
                    begin -= 1
            if begin > start:
                yield None, text[start:begin]
            yield self._token_to_id[token], ""
            start = match.end()
        if start < len(text):
            yield None, text[start:]

    def _encode_text(self, text: str, words: list[int] | None = None) -> list[int]:
        """Ids of one text, no [CLS]/[SEP] added. With `words`, also the word index of each id."""
        ids: list[int] = []
        cache = self._cache
        word = 0
        for special_id, segment in self._segments(text):
            if special_id is not None:
                ids.append(special_id)
                if words is not None:
                    words.append(word)
                word += 1
                continue
            # tokenizers' ByteLevel adds the prefix space to every piece between special tokens.
            if self.add_prefix_space and segment[0] != " ":
                segment = " " + segment
            for piece in self._pattern.findall(segment):
                piece_ids = cache.get(piece)
                if piece_ids is None:
                    piece_ids = self._bpe_ids(piece)
                ids += piece_ids
                if words is not None:
                    words += [word] * len(piece_ids)
                word += 1
        return ids

    def _bpe_ids(self, piece: str) -> list[int]:
        symbols = list(piece.encode("utf-8").decode("latin-1").translate(self._byte_table))
        if not self._all_bytes_known:
            # As in tokenizers: an unknown byte becomes the unknown token, or is dropped when there is none.
            unk = self.unk_token if self._bpe_unk is not None else None
            symbols = [c if c in self._vocab else unk for c in symbols]
            symbols = [c for c in symbols if c is not None]
        if len(symbols) >= _HEAP_BPE_MIN_SYMBOLS:
            symbols = self._merge_heap(symbols)
        else:
            self._merge_scan(symbols)
        ids = [self._vocab[s] for s in symbols]
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[piece] = ids
        return ids

    def _merge_scan(self, symbols: list[str]) -> None:
        """Apply merges in place: each round merges the leftmost occurrence of the lowest-ranked pair."""
        ranks = self._ranks
        while len(symbols) > 1:
            best_rank = None
            best = 0
            for i in range(len(symbols) - 1):
                rank = ranks.get((symbols[i], symbols[i + 1]))
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best = rank, i
            if best_rank is None:
                return
            symbols[best : best + 2] = [symbols[best] + symbols[best + 1]]

    def _merge_heap(self, symbols: list[str]) -> list[str]:
        """Same merges as `_merge_scan` (and as tokenizers' `Word::merge_all`) for long words: a heap of
        (rank, position) over a linked list of symbols."""
        ranks = self._ranks
        n = len(symbols)
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap = []
        for i in range(n - 1):
            rank = ranks.get((symbols[i], symbols[i + 1]))
            if rank is not None:
                heap.append((rank, i, symbols[i] + symbols[i + 1]))
        heapq.heapify(heap)
        while heap:
            rank, i, merged = heapq.heappop(heap)
            j = nxt[i]
            # Skip entries whose pair has changed since they were pushed (tokenizers compares the merge result).
            if not alive[i] or j >= n or (symbols[i], symbols[j]) not in ranks or symbols[i] + symbols[j] != merged:
                continue
            symbols[i] = merged
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prv[nxt[j]] = i
            if prv[i] >= 0:
                p = prv[i]
                rank = ranks.get((symbols[p], merged))
                if rank is not None:
                    heapq.heappush(heap, (rank, p, symbols[p] + merged))
            if nxt[i] < n:
                rank = ranks.get((merged, symbols[nxt[i]]))
                if rank is not None:
                    heapq.heappush(heap, (rank, i, merged + symbols[nxt[i]]))
        return [s for s, keep in zip(symbols, alive) if keep]
