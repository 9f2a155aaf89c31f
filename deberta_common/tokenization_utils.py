"""What `DebertaTokenizer` (pure Python) and `DebertaTokenizerFast` (`tokenizers`) share.

Everything that is not "turn one text into BPE ids" lives here, once: vocabulary files and their checks,
special tokens, the `__call__` surface (pairs, batches, truncation, padding, tensors), decoding, and
save/load of the Hugging Face side files (special_tokens_map.json, tokenizer_config.json).

Imports numpy only; torch and tensorflow are imported when `return_tensors` asks for them.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence, Union

import numpy as np

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
TOKENIZER_FILE = "tokenizer.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"

# Hugging Face's attribute order. Special tokens missing from vocab.json are appended after it in the order of
# their first appearance here, which gives [CLS], [SEP], [UNK], [PAD], [MASK] for the defaults.
SPECIAL_TOKEN_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIAL_TOKENS = {
    "bos_token": "[CLS]",
    "eos_token": "[SEP]",
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}

# Hugging Face writes this for "no limit"; anything this large reads back as None.
_NO_MAX_LENGTH = int(1e30)

_TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")
_PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
_TENSOR_TYPES = ("np", "pt", "tf")

TextInput = Union[str, Sequence[str], Sequence[Sequence[str]]]


class TokenizerError(ValueError):
    """A tokenizer file, argument or input that cannot be used. The message names the file, argument or value."""


# ----------------------------------------------------------------------------------------------------------------
# Byte-level alphabet and vocabulary files
# ----------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (bytes that print as themselves keep their character)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return dict(sorted(table.items()))


def _check_vocab(obj: Any, source: str) -> dict[str, int]:
    if not isinstance(obj, dict):
        raise TokenizerError(f"{source}: expected a JSON object mapping tokens to ids, got {type(obj).__name__}")
    seen: dict[int, str] = {}
    for token, index in obj.items():
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise TokenizerError(f"{source}: the id of token {token!r} must be a non-negative integer, got {index!r}")
        if index in seen:
            raise TokenizerError(f"{source}: tokens {seen[index]!r} and {token!r} share the id {index}")
        seen[index] = token
    return dict(obj)


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise TokenizerError(f"{path}: not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise TokenizerError(f"{path}: not UTF-8 text ({exc})") from None


def read_vocab(path: str | os.PathLike) -> dict[str, int]:
    """Read a vocab.json (token -> id) and check that ids are unique non-negative integers."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TokenizerError(f"vocabulary file not found: {path}")
    return _check_vocab(_read_json(path), path)


def _check_merges(pairs: Iterable[tuple[int, Any]], vocab: dict[str, int], source: str) -> list[tuple[str, str]]:
    merges = []
    for line_no, pair in pairs:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)):
            raise TokenizerError(f"{source}, line {line_no}: expected two tokens separated by one space, got {pair!r}")
        # tokenizers refuses merges whose parts or result are not tokens; checking here names the line.
        for token in (pair[0], pair[1], pair[0] + pair[1]):
            if token not in vocab:
                raise TokenizerError(
                    f"{source}, line {line_no}: {token!r} (from merge {' '.join(pair)!r}) is not in the vocabulary"
                )
        merges.append((pair[0], pair[1]))
    return merges


def read_merges(path: str | os.PathLike, vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Read a merges.txt: an optional "#version" line, then one "left right" pair per line, in rank order."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TokenizerError(f"merges file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except UnicodeDecodeError as exc:
        raise TokenizerError(f"{path}: not UTF-8 text ({exc})") from None
    numbered = []
    for line_no, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line or (line_no == 1 and line.startswith("#version")):
            continue
        numbered.append((line_no, tuple(line.split(" "))))
    return _check_merges(numbered, vocab, path)


def read_tokenizer_json(path: str | os.PathLike) -> tuple[dict[str, int], list[tuple[str, str]], list[str]]:
    """Vocabulary, merges and added-token strings of a `tokenizers` tokenizer.json holding a BPE model."""
    path = os.fspath(path)
    data = _read_json(path)
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE" or "vocab" not in model:
        raise TokenizerError(f"{path}: expected a tokenizers file with a BPE model")
    vocab = _check_vocab(model["vocab"], f"{path} (model.vocab)")
    # tokenizers < 0.20 wrote merges as "a b" strings, later versions as ["a", "b"] lists.
    raw = model.get("merges") or []
    pairs = [(i, tuple(m.split(" ")) if isinstance(m, str) else m) for i, m in enumerate(raw, start=1)]
    merges = _check_merges(pairs, vocab, f"{path} (model.merges entry)")
    added = [t.get("content") for t in data.get("added_tokens") or [] if isinstance(t, dict)]
    return vocab, merges, added


def write_vocab_files(
    directory: str | os.PathLike, vocab: dict[str, int], merges: Sequence[tuple[str, str]], prefix: str | None = None
) -> tuple[str, str]:
    """Write vocab.json (in id order) and merges.txt (with the "#version: 0.2" header). Returns both paths."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise TokenizerError(f"cannot save the vocabulary: {directory} is not a directory")
    stem = f"{prefix}-" if prefix else ""
    vocab_path = os.path.join(directory, stem + VOCAB_FILE)
    merges_path = os.path.join(directory, stem + MERGES_FILE)
    with open(vocab_path, "w", encoding="utf-8") as handle:
        json.dump(dict(sorted(vocab.items(), key=lambda kv: kv[1])), handle, ensure_ascii=False, indent=0)
        handle.write("\n")
    with open(merges_path, "w", encoding="utf-8") as handle:
        handle.write("#version: 0.2\n")
        handle.writelines(f"{a} {b}\n" for a, b in merges)
    return vocab_path, merges_path


def _token_content(value: Any, source: str, key: str) -> str:
    # Hugging Face stores special tokens either as strings or as AddedToken dicts.
    if isinstance(value, dict):
        value = value.get("content")
    if not isinstance(value, str) or not value:
        raise TokenizerError(f"{source}: {key} must be a non-empty string or an object with a 'content' string")
    return value


def read_tokenizer_config(directory: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Constructor arguments from tokenizer_config.json and special_tokens_map.json (the latter wins, as in
    Hugging Face), and the token -> id table of tokenizer_config.json's "added_tokens_decoder" for checking."""
    kwargs: dict[str, Any] = {}
    expected_ids: dict[str, int] = {}
    config_path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    if os.path.isfile(config_path):
        config = _read_json(config_path)
        if not isinstance(config, dict):
            raise TokenizerError(f"{config_path}: expected a JSON object")
        for key in SPECIAL_TOKEN_ATTRIBUTES:
            if config.get(key) is not None:
                kwargs[key] = _token_content(config[key], config_path, key)
        if "add_prefix_space" in config:
            kwargs["add_prefix_space"] = bool(config["add_prefix_space"])
        if isinstance(config.get("errors"), str):
            kwargs["errors"] = config["errors"]
        max_length = config.get("model_max_length")
        if isinstance(max_length, (int, float)) and not isinstance(max_length, bool) and 0 < max_length < 1e20:
            kwargs["model_max_length"] = int(max_length)
        for index, token in (config.get("added_tokens_decoder") or {}).items():
            try:
                expected_ids[_token_content(token, config_path, "added_tokens_decoder")] = int(index)
            except ValueError:
                raise TokenizerError(f"{config_path}: added_tokens_decoder key {index!r} is not an id") from None
    map_path = os.path.join(directory, SPECIAL_TOKENS_MAP_FILE)
    if os.path.isfile(map_path):
        special = _read_json(map_path)
        if not isinstance(special, dict):
            raise TokenizerError(f"{map_path}: expected a JSON object")
        for key in SPECIAL_TOKEN_ATTRIBUTES:
            if special.get(key) is not None:
                kwargs[key] = _token_content(special[key], map_path, key)
    return kwargs, expected_ids


def clean_up_tokenization(text: str) -> str:
    """Hugging Face's clean-up: drop the space before punctuation and English contractions."""
    for before, after in (
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
        (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ):  # fmt: skip
        text = text.replace(before, after)
    return text


# ----------------------------------------------------------------------------------------------------------------
# BatchEncoding
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """How one row of a batch was put together, so that word/sequence ids can be rebuilt on demand."""

    handle_a: Any
    handle_b: Any  # None for a single text
    keep_a: int
    keep_b: int
    special_tokens: bool
    pad: int
    pad_left: bool


def _with_special_tokens(a: list, b: list | None, cls: Any, sep: Any) -> list:
    return [cls, *a, sep] if b is None else [cls, *a, sep, *b, sep]


def _arrange(layout: _Layout, a: list, b: list | None, cls: Any, sep: Any, pad: Any) -> list:
    """One row of a per-token field: the kept part of each text, special tokens (if any), then padding."""
    a = a[: layout.keep_a]
    b = None if b is None else b[: layout.keep_b]
    return _pad(layout, _with_special_tokens(a, b, cls, sep) if layout.special_tokens else a + (b or []), pad)


def _pad(layout: _Layout, row: list, pad: Any) -> list:
    if not layout.pad:
        return row
    return [pad] * layout.pad + row if layout.pad_left else row + [pad] * layout.pad


class BatchEncoding(dict):
    """The tokenizer output: a dict of field name -> lists (or 2-D arrays/tensors), fields also readable as
    attributes (`enc.input_ids`). `word_ids(i)` / `sequence_ids(i)` describe the tokens of row `i`."""

    def __init__(
        self,
        data: dict[str, Any],
        layouts: list[_Layout] | None = None,
        word_ids_of: Callable[[Any], list[int | None]] | None = None,
    ):
        super().__init__(data)
        self._layouts = layouts or []
        self._word_ids_of = word_ids_of

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}") from None

    def __reduce__(self):  # pickle as a plain dict of fields; word_ids() needs the tokenizer
        return (BatchEncoding, (dict(self),))

    def _layout(self, batch_index: int) -> _Layout:
        if not self._layouts:
            raise TokenizerError("this BatchEncoding has no token layout (it was not produced by a tokenizer call)")
        try:
            return self._layouts[batch_index]
        except IndexError:
            raise TokenizerError(f"batch_index {batch_index} is out of range ({len(self._layouts)} rows)") from None

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """Index of the word (pre-tokenised piece) each token of row `batch_index` comes from; None for special
        and padding tokens. Word indices restart at 0 in the second text of a pair."""
        layout = self._layout(batch_index)
        words_a = self._word_ids_of(layout.handle_a)
        words_b = None if layout.handle_b is None else self._word_ids_of(layout.handle_b)
        return _arrange(layout, words_a, words_b, None, None, None)

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """0 or 1 for tokens of the first or second text of row `batch_index`; None for special and padding."""
        layout = self._layout(batch_index)
        b = None if layout.handle_b is None else [1] * layout.keep_b
        return _arrange(layout, [0] * layout.keep_a, b, None, None, None)


def _to_tensors(data: dict[str, list], return_tensors: str) -> dict[str, Any]:
    """Stack equal-length rows into int64 arrays/tensors (np.ndarray, torch.Tensor or tf.Tensor)."""
    out = {}
    for key, rows in data.items():
        if key == "length":
            array = np.asarray(rows, dtype=np.int64)
        else:
            lengths = {len(row) for row in rows}
            if len(lengths) > 1:
                raise TokenizerError(
                    f"return_tensors={return_tensors!r} needs rows of equal length, but {key} has lengths from "
                    f"{min(lengths)} to {max(lengths)}; pass padding=True (or padding='max_length')"
                )
            array = np.asarray(rows, dtype=np.int64)
            if not rows:
                array = array.reshape((0, 0, 2) if key == "offset_mapping" else (0, 0))
        if return_tensors == "pt":
            import torch

            out[key] = torch.from_numpy(array)
        elif return_tensors == "tf":
            import tensorflow as tf

            out[key] = tf.constant(array, dtype=tf.int64)
        else:
            out[key] = array
    return out


def _ids_to_list(ids: Any) -> list[int]:
    """Accept a list/tuple of ints, an int, or a 1-D numpy array / torch tensor / tf tensor."""
    if hasattr(ids, "tolist"):  # numpy, torch
        ids = ids.tolist()
    elif hasattr(ids, "numpy"):  # tensorflow
        ids = ids.numpy().tolist()
    if isinstance(ids, int):
        return [ids]
    if not isinstance(ids, (list, tuple)):
        raise TokenizerError(f"expected a sequence of token ids, got {type(ids).__name__}")
    for i in ids:
        if not isinstance(i, int) or isinstance(i, bool):
            raise TokenizerError(f"token ids must be integers, got {type(i).__name__} ({i!r}); "
                                 "for a batch use batch_decode")  # fmt: skip
    return list(ids)


# ----------------------------------------------------------------------------------------------------------------
# The shared tokenizer
# ----------------------------------------------------------------------------------------------------------------


class DebertaTokenizerBase:
    """Everything but the text -> ids step. Subclasses set up `self` with `_setup()` and implement
    `_encode_batch`, `_word_ids` and (optionally) offsets; see `DebertaTokenizer` and `DebertaTokenizerFast`."""

    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    padding_side = "right"
    is_fast = False
    supports_offsets = False

    # -- construction ------------------------------------------------------------------------------------------

    def _setup(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        *,
        errors: str,
        special_tokens: dict[str, str],
        add_prefix_space: bool,
        model_max_length: int | None,
    ) -> None:
        self._vocab = vocab
        self._merges = merges
        self.errors = errors
        self.add_prefix_space = bool(add_prefix_space)
        if model_max_length is not None and (not isinstance(model_max_length, int) or model_max_length <= 0):
            raise TokenizerError(f"model_max_length must be a positive integer or None, got {model_max_length!r}")
        self.model_max_length = model_max_length
        for key in SPECIAL_TOKEN_ATTRIBUTES:
            value = special_tokens.get(key, DEFAULT_SPECIAL_TOKENS[key])
            if not isinstance(value, str) or not value:
                raise TokenizerError(f"{key} must be a non-empty string, got {value!r}")
            setattr(self, key, value)
        # Special tokens missing from the vocabulary get the next ids, as Hugging Face's added tokens do.
        missing = [t for t in self.all_special_tokens if t not in vocab]
        if missing and vocab and max(vocab.values()) >= len(vocab):
            raise TokenizerError(
                f"cannot append the special tokens {missing}: the vocabulary ids are not 0..{len(vocab) - 1}"
            )
        self._added: dict[str, int] = {t: len(vocab) + i for i, t in enumerate(missing)}
        self._token_to_id = {**vocab, **self._added}
        self._id_to_token = {i: t for t, i in self._token_to_id.items()}
        self._special_ids = frozenset(self._token_to_id[t] for t in self.all_special_tokens)
        self._byte_decoder = {c: b for b, c in bytes_to_unicode().items()}

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs: Any) -> "DebertaTokenizerBase":
        """Load from a folder holding vocab.json and merges.txt (the fast tokenizer also reads tokenizer.json),
        plus special_tokens_map.json / tokenizer_config.json when present, or from an embedded checkpoint's
        name ("deberta-zoo/tiny-mlm"). `kwargs` override those files."""
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            from .hub import EMBEDDED_CHECKPOINTS, resolve_checkpoint

            if directory not in EMBEDDED_CHECKPOINTS:
                raise TokenizerError(f"tokenizer folder not found: {directory}")
            directory = resolve_checkpoint(directory)
        config, expected_ids = read_tokenizer_config(directory)
        config.update(kwargs)
        tokenizer = cls(**cls._files_in(directory), **config)
        for token, index in expected_ids.items():
            if tokenizer._token_to_id.get(token) != index:
                raise TokenizerError(
                    f"{os.path.join(directory, TOKENIZER_CONFIG_FILE)}: added token {token!r} has id {index}, but this "
                    f"tokenizer gives it {tokenizer._token_to_id.get(token)} (only special tokens can be added tokens)"
                )
        return tokenizer

    @classmethod
    def _files_in(cls, directory: str) -> dict[str, str]:
        files = {}
        for key, name in (("vocab_file", VOCAB_FILE), ("merges_file", MERGES_FILE)):
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                raise TokenizerError(f"{directory} has no {name}")
            files[key] = path
        return files

    def save_vocabulary(self, save_directory: str | os.PathLike, filename_prefix: str | None = None) -> tuple[str, str]:
        """Write vocab.json and merges.txt into an existing folder; returns their paths."""
        return write_vocab_files(save_directory, self._vocab, self._merges, filename_prefix)

    def save_pretrained(self, save_directory: str | os.PathLike) -> tuple[str, ...]:
        """Write everything `from_pretrained` reads (creating the folder); returns the paths written."""
        save_directory = os.fspath(save_directory)
        os.makedirs(save_directory, exist_ok=True)
        paths = list(self.save_vocabulary(save_directory))

        def token_entry(token: str) -> dict[str, Any]:
            return {"content": token, "lstrip": token == self.mask_token, "normalized": False, "rstrip": False,
                    "single_word": False}  # fmt: skip

        special_map = {key: getattr(self, key) for key in SPECIAL_TOKEN_ATTRIBUTES}
        special_map["mask_token"] = token_entry(self.mask_token)
        config: dict[str, Any] = {
            "tokenizer_class": "DebertaTokenizer",
            "add_prefix_space": self.add_prefix_space,
            "errors": self.errors,
            "clean_up_tokenization_spaces": False,
            **{key: getattr(self, key) for key in SPECIAL_TOKEN_ATTRIBUTES},
            "added_tokens_decoder": {
                str(self._token_to_id[t]): {**token_entry(t), "special": True}
                for t in sorted(self.all_special_tokens, key=self._token_to_id.__getitem__)
            },
        }
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        for name, content in ((SPECIAL_TOKENS_MAP_FILE, special_map), (TOKENIZER_CONFIG_FILE, config)):
            path = os.path.join(save_directory, name)
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(content, handle, ensure_ascii=False, indent=2)
                handle.write("\n")
            paths.append(path)
        paths.extend(self._save_extra(save_directory))
        return tuple(paths)

    def _save_extra(self, save_directory: str) -> list[str]:
        return []

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, added={len(self._added)}, "
            f"add_prefix_space={self.add_prefix_space}, model_max_length={self.model_max_length})"
        )

    # -- to be provided by the backends ------------------------------------------------------------------------

    def _encode_batch(self, texts: list[str], with_offsets: bool) -> tuple[list[list[int]], list[Any]]:
        """Ids of each text without special tokens, and one handle per text for `_word_ids` / `_offsets`."""
        raise NotImplementedError

    def _word_ids(self, handle: Any) -> list[int]:
        raise NotImplementedError

    def _offsets(self, handle: Any) -> list[tuple[int, int]]:
        raise NotImplementedError

    # -- vocabulary --------------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary (vocab.json), without appended special tokens."""
        return len(self._vocab)

    def __len__(self) -> int:
        return len(self._token_to_id)

    def get_vocab(self) -> dict[str, int]:
        """Token -> id for the base vocabulary and the appended special tokens."""
        return dict(self._token_to_id)

    @property
    def all_special_tokens(self) -> list[str]:
        seen: dict[str, None] = {}
        for key in SPECIAL_TOKEN_ATTRIBUTES:
            seen.setdefault(getattr(self, key), None)
        return list(seen)

    @property
    def all_special_ids(self) -> list[int]:
        return [self._token_to_id[t] for t in self.all_special_tokens]

    @property
    def special_tokens_map(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in SPECIAL_TOKEN_ATTRIBUTES}

    bos_token_id = property(lambda self: self._token_to_id[self.bos_token])
    eos_token_id = property(lambda self: self._token_to_id[self.eos_token])
    unk_token_id = property(lambda self: self._token_to_id[self.unk_token])
    sep_token_id = property(lambda self: self._token_to_id[self.sep_token])
    pad_token_id = property(lambda self: self._token_to_id[self.pad_token])
    cls_token_id = property(lambda self: self._token_to_id[self.cls_token])
    mask_token_id = property(lambda self: self._token_to_id[self.mask_token])
    pad_token_type_id = 0

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Id of a token (or of each token); tokens not in the vocabulary map to the unknown token's id."""
        if isinstance(tokens, str):
            return self._token_to_id.get(tokens, self.unk_token_id)
        return [self._token_to_id.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Token string of an id (or of each id). Ids outside the vocabulary raise TokenizerError."""
        single = (isinstance(ids, int) and not isinstance(ids, bool)) or getattr(ids, "ndim", None) == 0
        tokens = []
        for i in _ids_to_list(ids):
            if skip_special_tokens and i in self._special_ids:
                continue
            token = self._id_to_token.get(i)
            if token is None:
                raise TokenizerError(f"token id {i} is not in the vocabulary (ids go up to {len(self) - 1})")
            tokens.append(token)
        return tokens[0] if single and tokens else tokens

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Join byte-level tokens back into text; special tokens are kept as written."""
        special = set(self.all_special_tokens)
        parts: list[str] = []
        run: list[str] = []
        for token in tokens:
            if token in special:
                if run:
                    parts.append(self._bytes_to_text(run))
                    run = []
                parts.append(token)
            else:
                run.append(token)
        if run:
            parts.append(self._bytes_to_text(run))
        return "".join(parts)

    def _bytes_to_text(self, tokens: list[str]) -> str:
        decoder = self._byte_decoder
        try:
            data = bytes(map(decoder.__getitem__, "".join(tokens)))
        except KeyError:
            # A token outside the byte-level alphabet stands for its own UTF-8 bytes (as in tokenizers' decoder).
            data = b"".join(
                bytes(map(decoder.__getitem__, t)) if all(c in decoder for c in t) else t.encode("utf-8")
                for t in tokens
            )
        return data.decode("utf-8", errors=self.errors)

    # -- special tokens ----------------------------------------------------------------------------------------

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """`[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`."""
        return _with_special_tokens(list(token_ids_0), None if token_ids_1 is None else list(token_ids_1),
                                    self.cls_token_id, self.sep_token_id)  # fmt: skip

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """0 for `[CLS] A [SEP]`, 1 for `B [SEP]`."""
        first = [0] * (len(token_ids_0) + 2)
        return first if token_ids_1 is None else first + [1] * (len(token_ids_1) + 1)

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 where `build_inputs_with_special_tokens` puts a special token, 0 elsewhere; with
        `already_has_special_tokens=True`, 1 for every special-token id in `token_ids_0`."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise TokenizerError("pass a single sequence when it already has its special tokens")
            return [1 if i in self._special_ids else 0 for i in token_ids_0]
        zeros_b = None if token_ids_1 is None else [0] * len(token_ids_1)
        return _with_special_tokens([0] * len(token_ids_0), zeros_b, 1, 1)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2

    # -- encoding ----------------------------------------------------------------------------------------------

    def tokenize(self, text: str, text_pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        """Token strings of a text (special tokens written in the text stay whole)."""
        return self.convert_ids_to_tokens(self.encode(text, text_pair, add_special_tokens=add_special_tokens))

    def encode(
        self,
        text: TextInput,
        text_pair: TextInput | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = None,
    ) -> Any:
        """Just the input ids of `self(text, text_pair, ...)`."""
        return self(
            text, text_pair, add_special_tokens=add_special_tokens, padding=padding, truncation=truncation,
            max_length=max_length, return_tensors=return_tensors, return_token_type_ids=False,
            return_attention_mask=False,
        )["input_ids"]  # fmt: skip

    def __call__(
        self,
        text: TextInput,
        text_pair: TextInput | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool = True,
        return_attention_mask: bool = True,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
    ) -> BatchEncoding:
        """Encode a text, a pair (`text`, `text_pair`), a list of texts, or a list of pairs (a list of 2-tuples,
        or two lists). A single input gives flat lists; a list gives one row per input. See docs/tokenizers.md."""
        batched, firsts, seconds = self._split_inputs(text, text_pair)
        padding, truncation, max_length = self._strategies(padding, truncation, max_length)
        if return_tensors is not None and return_tensors not in _TENSOR_TYPES:
            raise TokenizerError(f"return_tensors must be one of {list(_TENSOR_TYPES)} or None, got {return_tensors!r}")
        if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of <= 0):
            raise TokenizerError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}")
        if return_offsets_mapping and not self.supports_offsets:
            raise NotImplementedError(
                f"return_offsets_mapping is only available with DebertaTokenizerFast, not {type(self).__name__}"
            )

        ids, handles = self._encode_batch(firsts + (seconds or []), with_offsets=return_offsets_mapping)
        n = len(firsts)
        ids_a, ids_b = ids[:n], (ids[n:] if seconds is not None else [None] * n)
        handles_a, handles_b = handles[:n], (handles[n:] if seconds is not None else [None] * n)

        kept = [self._truncated_lengths(a, b, truncation, max_length, add_special_tokens) for a, b in zip(ids_a, ids_b)]
        extra = self.num_special_tokens_to_add(seconds is not None) if add_special_tokens else 0
        lengths = [ka + (kb or 0) + extra for ka, kb in kept]
        target = self._padded_length(lengths, padding, max_length, pad_to_multiple_of)
        pad_left = self.padding_side == "left"
        layouts = [
            _Layout(ha, hb, ka, kb or 0, add_special_tokens, max(target - length, 0), pad_left)
            for ha, hb, (ka, kb), length in zip(handles_a, handles_b, kept, lengths)
        ]

        pad_id, cls_id, sep_id = self.pad_token_id, self.cls_token_id, self.sep_token_id
        rows = list(zip(layouts, ids_a, ids_b))
        data: dict[str, list] = {"input_ids": [_arrange(lay, a, b, cls_id, sep_id, pad_id) for lay, a, b in rows]}
        if return_token_type_ids:
            data["token_type_ids"] = [_pad(lay, self._token_types(lay, b is not None), 0) for lay, _, b in rows]
        if return_attention_mask:
            data["attention_mask"] = [_pad(lay, [1] * (len(row) - lay.pad), 0)
                                      for lay, row in zip(layouts, data["input_ids"])]  # fmt: skip
        if return_special_tokens_mask:
            data["special_tokens_mask"] = [
                _arrange(lay, [0] * lay.keep_a, None if b is None else [0] * lay.keep_b, 1, 1, 1) for lay, _, b in rows
            ]
        if return_offsets_mapping:
            data["offset_mapping"] = [
                _arrange(lay, self._offsets(lay.handle_a), None if b is None else self._offsets(lay.handle_b),
                         (0, 0), (0, 0), (0, 0))
                for lay, _, b in rows
            ]  # fmt: skip
        if return_length:
            data["length"] = [len(row) for row in data["input_ids"]]

        if return_tensors is not None:
            data = _to_tensors(data, return_tensors)  # a single input becomes a batch of one
        elif not batched:
            data = {key: values[0] for key, values in data.items()}
        return BatchEncoding(data, layouts, self._word_ids)

    def _token_types(self, layout: _Layout, pair: bool) -> list[int]:
        # Without special tokens the second text is still type 1, as with tokenizers' TemplateProcessing
        # (Hugging Face's Python tokenizers give it 0 there).
        if not layout.special_tokens:
            return [0] * layout.keep_a + [1] * (layout.keep_b if pair else 0)
        return self.create_token_type_ids_from_sequences([0] * layout.keep_a, [0] * layout.keep_b if pair else None)

    def _split_inputs(self, text: Any, text_pair: Any) -> tuple[bool, list[str], list[str] | None]:
        """(batched, first texts, second texts or None), with every text checked to be a str."""

        def check(value: Any, where: str) -> str:
            if not isinstance(value, str):
                raise TokenizerError(f"{where} must be a str, got {type(value).__name__}")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise TokenizerError(f"{where} is not valid Unicode: lone surrogate at index {exc.start}") from None
            return value

        if isinstance(text, str):
            if text_pair is not None and not isinstance(text_pair, str):
                raise TokenizerError(f"text_pair must be a str when text is a str, got {type(text_pair).__name__}")
            return False, [check(text, "text")], None if text_pair is None else [check(text_pair, "text_pair")]
        if not isinstance(text, (list, tuple)):
            raise TokenizerError(
                f"text must be a str, a list of str or a list of (str, str) pairs, got {type(text).__name__}"
            )
        if text_pair is not None:
            if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text):
                got = f"length {len(text_pair)}" if isinstance(text_pair, (list, tuple)) else type(text_pair).__name__
                raise TokenizerError(
                    f"with a list of texts, text_pair must be a list of the same length ({len(text)}), got {got}"
                )
            return True, [check(t, f"text[{i}]") for i, t in enumerate(text)], [
                check(t, f"text_pair[{i}]") for i, t in enumerate(text_pair)
            ]
        if text and all(isinstance(t, (list, tuple)) for t in text):
            for i, pair in enumerate(text):
                if len(pair) != 2:
                    raise TokenizerError(f"text[{i}] must be a (text, text_pair) pair, got {len(pair)} items")
            return True, [check(p[0], f"text[{i}][0]") for i, p in enumerate(text)], [
                check(p[1], f"text[{i}][1]") for i, p in enumerate(text)
            ]
        return True, [check(t, f"text[{i}]") for i, t in enumerate(text)], None

    def _strategies(self, padding: Any, truncation: Any, max_length: Any) -> tuple[str | None, str | None, int | None]:
        """Normalise padding/truncation the way Hugging Face does: True means "longest" / "longest_first", and
        max_length alone (no padding, truncation left unset) turns on "longest_first" truncation."""
        if max_length is not None and (type(max_length) is not int or max_length < 0):
            raise TokenizerError(f"max_length must be a non-negative integer or None, got {max_length!r}")
        if padding is True:
            padding = "longest"
        elif padding is False or padding is None:
            padding = "do_not_pad"
        if padding not in _PADDING_STRATEGIES:
            raise TokenizerError(f"padding must be True, False or one of {list(_PADDING_STRATEGIES)}, got {padding!r}")
        if truncation is None:
            truncation = "longest_first" if max_length is not None and padding == "do_not_pad" else "do_not_truncate"
        elif truncation is True:
            truncation = "longest_first"
        elif truncation is False:
            truncation = "do_not_truncate"
        if truncation not in _TRUNCATION_STRATEGIES:
            raise TokenizerError(
                f"truncation must be True, False or one of {list(_TRUNCATION_STRATEGIES)}, got {truncation!r}"
            )
        if max_length is None and (padding == "max_length" or truncation != "do_not_truncate"):
            max_length = self.model_max_length
            if max_length is None:  # as in Hugging Face: warn, then go on without
                what = "truncation" if truncation != "do_not_truncate" else "padding='max_length'"
                warnings.warn(f"{what} needs max_length and this tokenizer has no model_max_length; ignoring it",
                              stacklevel=3)  # fmt: skip
        padding = None if padding == "do_not_pad" or (padding == "max_length" and max_length is None) else padding
        truncation = None if truncation == "do_not_truncate" or max_length is None else truncation
        return padding, truncation, max_length

    def _truncated_lengths(
        self, a: list[int], b: list[int] | None, strategy: str | None, max_length: int | None, special: bool
    ) -> tuple[int, int | None]:
        """How many tokens of each text survive truncation (always from the end, as in the reference)."""
        len_a, len_b = len(a), None if b is None else len(b)
        if strategy is None:
            return len_a, len_b
        n_special = self.num_special_tokens_to_add(b is not None) if special else 0
        excess = len_a + (len_b or 0) + n_special - max_length
        if strategy == "only_second" and b is None:
            raise TokenizerError("truncation='only_second' needs pairs of texts")
        if excess <= 0:
            return len_a, len_b
        if strategy == "longest_first":
            if max_length < n_special:
                raise TokenizerError(f"max_length={max_length} is smaller than the {n_special} special tokens")
            if b is None:
                return len_a - excess, None
            # Same result as the reference loop that drops one token at a time from the longer text (from the
            # second one on ties): cut the longer down to the shorter, then share the rest, second text first.
            cut = min(excess, max(len_a - len_b, 0))
            len_a, excess = len_a - cut, excess - cut
            cut = min(excess, max(len_b - len_a, 0))
            len_b, excess = len_b - cut, excess - cut
            return len_a - excess // 2, len_b - (excess + 1) // 2
        which, length = ("first", len_a) if strategy == "only_first" else ("second", len_b)
        if length <= excess:
            raise TokenizerError(
                f"truncation={strategy!r} cannot fit max_length={max_length}: {excess} tokens must go but the "
                f"{which} text has only {length} (total {len_a + (len_b or 0)} tokens + {n_special} special); "
                f"use truncation='longest_first' or a larger max_length"
            )
        return (len_a - excess, len_b) if strategy == "only_first" else (len_a, len_b - excess)

    @staticmethod
    def _padded_length(lengths: list[int], padding: str | None, max_length: int | None, multiple: int | None) -> int:
        if padding is None or not lengths:
            return 0
        target = max(lengths) if padding == "longest" else max_length
        if multiple:
            target = -(-target // multiple) * multiple
        return target

    # -- decoding ----------------------------------------------------------------------------------------------

    def decode(
        self, token_ids: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool = False
    ) -> str:
        """Text of a sequence of ids (list, 1-D array or tensor). Invalid UTF-8 follows `errors` ("replace")."""
        tokens = self.convert_ids_to_tokens(_ids_to_list(token_ids), skip_special_tokens=skip_special_tokens)
        text = self.convert_tokens_to_string(tokens)
        return clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    def batch_decode(
        self, sequences: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool = False
    ) -> list[str]:
        """`decode` for each row of a batch (list of lists, 2-D array or tensor)."""
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        elif hasattr(sequences, "numpy"):
            sequences = sequences.numpy().tolist()
        return [self.decode(row, skip_special_tokens, clean_up_tokenization_spaces) for row in sequences]
