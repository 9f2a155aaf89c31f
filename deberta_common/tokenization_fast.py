"""`DebertaTokenizerFast`: the DeBERTa (v1) tokenizer on the Rust `tokenizers` library.

The `tokenizers` pipeline does text -> ids (and character offsets, word ids); truncation, special tokens,
padding and decoding are the shared Python code in `tokenization_utils`, so both tokenizers agree by
construction. The pipeline (BPE, ByteLevel pre-tokenizer and decoder, ByteLevel offset trimming followed by
`[CLS] $A [SEP]` / `[CLS] $A [SEP] $B:1 [SEP]:1` templates) is also complete on its own, as saved in tokenizer.json.
"""

from __future__ import annotations

import os
from typing import Any

from tokenizers import AddedToken, Encoding, Tokenizer, decoders, models, pre_tokenizers, processors

from .tokenization_utils import (
    MERGES_FILE,
    TOKENIZER_FILE,
    VOCAB_FILE,
    DebertaTokenizerBase,
    TokenizerError,
    read_merges,
    read_tokenizer_json,
    read_vocab,
)


class DebertaTokenizerFast(DebertaTokenizerBase):
    """DeBERTa (v1) tokenizer backed by `tokenizers`: GPT-2 byte-level BPE from vocab.json + merges.txt, or from a
    tokenizer.json holding the same BPE model. Also gives character offsets (`return_offsets_mapping=True`)."""

    is_fast = True
    supports_offsets = True

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        merges_file: str | os.PathLike | None = None,
        tokenizer_file: str | os.PathLike | None = None,
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
        special = dict(bos_token=bos_token, eos_token=eos_token, sep_token=sep_token, cls_token=cls_token,
                       unk_token=unk_token, pad_token=pad_token, mask_token=mask_token)  # fmt: skip
        vocab, merges = self._load_model(vocab_file, merges_file, tokenizer_file, set(special.values()))
        self._setup(vocab, merges, errors=errors, special_tokens=special, add_prefix_space=add_prefix_space,
                    model_max_length=model_max_length)  # fmt: skip
        self._tokenizer = self._build_backend()
        # encode_batch_fast (recent tokenizers) skips the offset bookkeeping; older versions only have encode_batch.
        self._encode_batch_no_offsets = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)

    @staticmethod
    def _load_model(
        vocab_file: Any, merges_file: Any, tokenizer_file: Any, special_tokens: set[str]
    ) -> tuple[dict[str, int], list[tuple[str, str]]]:
        if tokenizer_file is None:
            if vocab_file is None or merges_file is None:
                raise TokenizerError("DebertaTokenizerFast needs vocab_file and merges_file, or tokenizer_file")
            vocab = read_vocab(vocab_file)
            return vocab, read_merges(merges_file, vocab)
        vocab, merges, added = read_tokenizer_json(tokenizer_file)
        unknown = [t for t in added if t not in special_tokens and t not in vocab]
        if unknown:
            raise TokenizerError(f"{tokenizer_file}: added tokens {unknown} are not special tokens (not supported)")
        if vocab_file is not None and read_vocab(vocab_file) != vocab:
            raise TokenizerError(f"{tokenizer_file} and {vocab_file} hold different vocabularies")
        if merges_file is not None and read_merges(merges_file, vocab) != merges:
            raise TokenizerError(f"{tokenizer_file} and {merges_file} hold different merges")
        return vocab, merges

    @classmethod
    def _files_in(cls, directory: str) -> dict[str, str]:
        tokenizer_file = os.path.join(directory, TOKENIZER_FILE)
        if not os.path.isfile(tokenizer_file):
            return super()._files_in(directory)
        files = {"tokenizer_file": tokenizer_file}
        for key, name in (("vocab_file", VOCAB_FILE), ("merges_file", MERGES_FILE)):
            if os.path.isfile(os.path.join(directory, name)):
                files[key] = os.path.join(directory, name)
        return files

    def _build_backend(self) -> Tokenizer:
        # The unknown token can only be given to BPE when it is in BPE's own vocabulary.
        unk = self.unk_token if self.unk_token in self._vocab else None
        tokenizer = Tokenizer(models.BPE(vocab=dict(self._vocab), merges=list(self._merges), unk_token=unk,
                                         fuse_unk=False))  # fmt: skip
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=self.add_prefix_space, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
        in_order = sorted(self.all_special_tokens, key=self._token_to_id.__getitem__)
        tokenizer.add_special_tokens(
            [AddedToken(t, special=True, normalized=False, lstrip=t == self.mask_token, rstrip=False) for t in in_order]
        )
        for token in in_order:
            if tokenizer.token_to_id(token) != self._token_to_id[token]:
                raise TokenizerError(f"tokenizers gave {token!r} the id {tokenizer.token_to_id(token)}, "
                                     f"expected {self._token_to_id[token]}")  # fmt: skip
        cls, sep = self.cls_token, self.sep_token
        tokenizer.post_processor = processors.Sequence([
            # Offsets of "Ġworld" start at "w", not at the space folded into the token.
            processors.ByteLevel(trim_offsets=True, add_prefix_space=self.add_prefix_space),
            processors.TemplateProcessing(
                single=[f"{cls}:0", "$A:0", f"{sep}:0"],
                pair=[f"{cls}:0", "$A:0", f"{sep}:0", "$B:1", f"{sep}:1"],
                special_tokens=[(cls, self.cls_token_id), (sep, self.sep_token_id)],
            ),
        ])  # fmt: skip
        return tokenizer

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The `tokenizers.Tokenizer` doing the work (what tokenizer.json holds)."""
        return self._tokenizer

    def _save_extra(self, save_directory: str) -> list[str]:
        path = os.path.join(save_directory, TOKENIZER_FILE)
        self._tokenizer.save(path)
        return [path]

    # -- text -> ids -------------------------------------------------------------------------------------------

    def _encode_batch(self, texts: list[str], with_offsets: bool) -> tuple[list[list[int]], list[Any]]:
        if with_offsets:
            encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
            return [e.ids for e in encodings], encodings
        # The fast path tracks neither offsets nor word ids: word_ids() re-encodes the text when asked.
        return [e.ids for e in self._encode_batch_no_offsets(texts, add_special_tokens=False)], texts

    def _word_ids(self, handle: Encoding | str) -> list[int]:
        if isinstance(handle, str):
            handle = self._tokenizer.encode(handle, add_special_tokens=False)
        return handle.word_ids

    def _offsets(self, handle: Encoding) -> list[tuple[int, int]]:
        return handle.offsets
