"""Checkpoint files, read lazily and written shard by shard, as numpy arrays under PyTorch weight names.

Formats: `model.safetensors`, `pytorch_model.bin` (read with torch, `weights_only=True`), `tf_model.h5`
(the Keras-2 layout of the established TensorFlow DeBERTa checkpoints), and the sharded form of each
(`*.index.json` naming the shard of every weight). Whatever the format, a `CheckpointReader` shows PyTorch
names and layouts; TensorFlow names are translated by `weight_names`, the one table for that.
"""

from __future__ import annotations

import json
import os
import re
import struct
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

from . import weight_names

SAFE_WEIGHTS_NAME = "model.safetensors"
PT_WEIGHTS_NAME = "pytorch_model.bin"
TF_WEIGHTS_NAME = "tf_model.h5"
WEIGHT_FILES = {"safetensors": SAFE_WEIGHTS_NAME, "bin": PT_WEIGHTS_NAME, "h5": TF_WEIGHTS_NAME}
INDEX_SUFFIX = ".index.json"

# safetensors dtype tags <-> numpy. BF16 has no numpy dtype: it travels as uint16 bit patterns.
_ST_TO_NP = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
    "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_NP_TO_ST = {np.dtype(v): k for k, v in _ST_TO_NP.items() if k != "BF16"}
DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
               "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def itemsize(dtype: str) -> int:
    """Bytes per element of a dtype name ('float32', 'bfloat16', ...)."""
    tags = {v: k for k, v in DTYPE_NAMES.items()}
    return np.dtype(_ST_TO_NP[tags[dtype]]).itemsize


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and, where it applies, the key."""


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 stored as uint16 -> float32 (exact: bfloat16 is the top half of a float32)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def float32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounded to nearest even as torch does."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)


def parse_size(size: int | str) -> int:
    """'2GB', '500MB', '10KiB' or an int -> bytes (GB = 10**9, GiB = 2**30)."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B)?\s*", str(size).upper())
    if not match:
        raise ValueError(f"not a size: {size!r} (examples: 2GB, 500MB, 1000000)")
    number, unit = float(match.group(1)), match.group(2) or "B"
    base = 1024 if "I" in unit else 1000
    return int(number * base ** "BKMGT".index(unit[0]))


# ----------------------------------------------------------------------------- finding the files
def find_weight_files(folder: str, prefer: Iterable[str] = ("safetensors", "bin", "h5")) -> tuple[str, list[str]]:
    """(format, shard paths) of the weights in `folder`, taking the first format of `prefer` that is there."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"checkpoint folder not found: {folder}")
    for fmt in prefer:
        single = os.path.join(folder, WEIGHT_FILES[fmt])
        index = single + INDEX_SUFFIX
        if os.path.isfile(single):
            return fmt, [single]
        if os.path.isfile(index):
            return fmt, _shards_from_index(index)
    expected = ", ".join(WEIGHT_FILES[f] + "[.index.json]" for f in prefer)
    raise FileNotFoundError(f"no weight file in {folder} (looked for {expected})")


def _shards_from_index(index_file: str) -> list[str]:
    try:
        with open(index_file, encoding="utf-8") as fh:
            weight_map = json.load(fh)["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{index_file}: not a shard index with a 'weight_map' ({err})") from err
    folder = os.path.dirname(index_file)
    shards = []
    for shard in dict.fromkeys(weight_map.values()):
        path = os.path.join(folder, shard)
        if not os.path.isfile(path):
            raise CheckpointError(f"{index_file} names shard {shard}, which is missing from {folder}")
        shards.append(path)
    return shards


# ----------------------------------------------------------------------------- reading
class _SafetensorsFile:
    """A lazily read safetensors file (memory-mapped), checked against its own header."""

    def __init__(self, path: str) -> None:
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: not a safetensors file (only {size} bytes)")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > size - 8:
                raise CheckpointError(f"{path}: not a safetensors file or truncated (header of {header_len} bytes, file of {size})")
            try:
                header = json.loads(fh.read(header_len))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise CheckpointError(f"{path}: not a safetensors file (unreadable header: {err})") from err
        if not isinstance(header, dict):
            raise CheckpointError(f"{path}: not a safetensors file (header is not a JSON object)")
        header.pop("__metadata__", None)
        self.data_start = 8 + header_len
        data_size = size - self.data_start
        self.entries = {}
        for name, info in header.items():
            try:
                tag, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
                itemsize = np.dtype(_ST_TO_NP[tag]).itemsize
            except (KeyError, TypeError, ValueError) as err:
                raise CheckpointError(f"{path}: malformed header entry for {name!r}: {info!r}") from err
            if end > data_size:
                raise CheckpointError(f"{path}: truncated: tensor {name!r} ends at byte {end}, data holds {data_size}")
            if end - begin != int(np.prod(shape)) * itemsize:
                raise CheckpointError(f"{path}: tensor {name!r} has {end - begin} bytes for shape {shape} of {tag}")
            self.entries[name] = (tag, shape, begin)
        self._map = None

    def raw(self, name: str) -> np.ndarray:
        tag, shape, begin = self.entries[name]
        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
        count = int(np.prod(shape))
        dtype = np.dtype(_ST_TO_NP[tag]).newbyteorder("<")
        return np.frombuffer(self._map, dtype=dtype, count=count, offset=self.data_start + begin).reshape(shape)


class _TorchBinFile:
    """A `pytorch_model.bin` opened with `torch.load(weights_only=True, mmap=True)`."""

    def __init__(self, path: str) -> None:
        import torch  # the .bin format is torch's own

        self.path = path
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # torch raises many types for a bad zip/pickle
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{path}: expected a state dict, found a {type(state).__name__}")
        self.tensors = dict(state)
        self.entries = {
            name: (_torch_dtype_tag(t), tuple(t.shape), None) for name, t in self.tensors.items() if hasattr(t, "shape")
        }

    def raw(self, name: str) -> np.ndarray:
        import torch

        t = self.tensors[name].detach().contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16)
        return t.numpy()


def _torch_dtype_tag(t) -> str:
    name = str(t.dtype).replace("torch.", "")
    tags = {v: k for k, v in DTYPE_NAMES.items()}
    if name not in tags:
        raise CheckpointError(f"unsupported tensor dtype {name}")
    return tags[name]


# HDF5 keeps attributes in an object header of at most 64 KiB: Keras-2 h5 files split longer name lists
# into numbered attributes (`weight_names0`, `weight_names1`, ...). Large models need that.
_H5_ATTRIBUTE_LIMIT = 64512


def h5py_group():
    import h5py

    return h5py.Group


def write_h5_string_list(node, name: str, values: list[str]) -> None:
    data = np.asarray([v.encode("utf8") for v in values])
    chunks = 1
    while any(part.nbytes > _H5_ATTRIBUTE_LIMIT for part in np.array_split(data, chunks)):
        chunks += 1
    if chunks == 1:
        node.attrs[name] = data
    else:
        for i, part in enumerate(np.array_split(data, chunks)):
            node.attrs[f"{name}{i}"] = part


def read_h5_string_list(node, name: str) -> list[str]:
    parts = [node.attrs[name]] if name in node.attrs else []
    while f"{name}{len(parts)}" in node.attrs:
        parts.append(node.attrs[f"{name}{len(parts)}"])
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for part in parts for v in part]


class _TFH5File:
    """A `tf_model.h5` in the Keras-2 layout, seen under PyTorch names and layouts."""

    def __init__(self, path: str) -> None:
        import h5py

        self.path = path
        try:
            self.file = h5py.File(path, "r")
        except OSError as err:
            raise CheckpointError(f"{path}: not a readable HDF5 file ({err})") from err
        self.datasets = {}  # PyTorch name -> (h5 dataset, transposed)
        for dataset_path, tf_name in self._weight_paths():
            try:
                pt_name, transposed = weight_names.tf_to_pt(tf_name)
            except weight_names.WeightNameError:
                pt_name, transposed = tf_name, False  # kept under its own name, reported as unexpected
            if pt_name in self.datasets:
                continue
            self.datasets[pt_name] = (dataset_path, transposed)
        self.entries = {}
        for name, (dataset_path, transposed) in self.datasets.items():
            dataset = self.file[dataset_path]
            shape = tuple(dataset.shape[::-1]) if transposed else tuple(dataset.shape)
            self.entries[name] = (_NP_TO_ST.get(dataset.dtype, "F32"), shape, None)

    def _weight_paths(self) -> list[tuple[str, str]]:
        """(dataset path, TensorFlow weight name) of every weight the file lists."""
        root = self.file
        layers = read_h5_string_list(root, "layer_names")
        if not layers:
            raise CheckpointError(f"{self.path}: not a TensorFlow DeBERTa h5 (no 'layer_names' attribute at the root)")
        paths = []
        for layer in layers:
            if layer not in root:
                raise CheckpointError(f"{self.path}: layer_names lists {layer!r}, which the file does not hold")
            node = root[layer]
            if isinstance(node, h5py_group()):
                for weight in read_h5_string_list(node, "weight_names"):
                    paths.append((f"{layer}/{weight}", weight))
            else:  # the sharded layout: each entry is a dataset named by the weight name itself
                paths.append((layer, layer))
        return paths

    def raw(self, name: str) -> np.ndarray:
        dataset_path, transposed = self.datasets[name]
        try:
            value = np.asarray(self.file[dataset_path])
        except OSError as err:
            raise CheckpointError(f"{self.path}: cannot read {dataset_path} ({err})") from err
        return np.ascontiguousarray(value.T) if transposed else value


class CheckpointReader:
    """The weights of a checkpoint folder under PyTorch names, read one tensor at a time."""

    def __init__(self, folder: str, prefer: Iterable[str] = ("safetensors", "bin", "h5")) -> None:
        self.folder = folder
        self.format, self.files = find_weight_files(folder, prefer)
        opener = {"safetensors": _SafetensorsFile, "bin": _TorchBinFile, "h5": _TFH5File}[self.format]
        self._where = {}
        for path in self.files:
            shard = opener(path)
            for name in shard.entries:
                self._where[name] = shard

    def keys(self) -> list[str]:
        return list(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def shape(self, name: str) -> tuple[int, ...]:
        return self._where[name].entries[name][1]

    def dtype(self, name: str) -> str:
        """'float32', 'float16', 'bfloat16', ..."""
        return DTYPE_NAMES[self._where[name].entries[name][0]]

    def raw(self, name: str) -> np.ndarray:
        """The stored values in PyTorch layout; bfloat16 as uint16 bit patterns."""
        shard = self._where[name]
        try:
            return shard.raw(name)
        except CheckpointError:
            raise
        except Exception as err:
            raise CheckpointError(f"{shard.path}: cannot read tensor {name!r} ({type(err).__name__}: {err})") from err

    def check_floating(self, name: str) -> None:
        """Raise CheckpointError unless `name` holds floating-point values (every DeBERTa weight does)."""
        if self.dtype(name) not in ("float64", "float32", "float16", "bfloat16"):
            raise CheckpointError(f"{self.folder}: weight {name!r} is stored as {self.dtype(name)}, "
                                  f"not as floating-point values")

    def numpy(self, name: str) -> np.ndarray:
        """The values as a numpy array; bfloat16 is widened to float32 (numpy has no bfloat16)."""
        value = self.raw(name)
        return bf16_bits_to_float32(value) if self.dtype(name) == "bfloat16" else value

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        for name in self._where:
            yield name, self.numpy(name)


# ----------------------------------------------------------------------------- writing
def plan_shards(sizes: Mapping[str, int], max_shard_size: int | str) -> list[list[str]]:
    """Group names into shards of at most `max_shard_size` bytes each (a larger tensor gets a shard alone)."""
    limit = parse_size(max_shard_size)
    shards, current, current_size = [], [], 0
    for name, size in sizes.items():
        if current and current_size + size > limit:
            shards.append(current)
            current, current_size = [], 0
        current.append(name)
        current_size += size
    if current or not shards:
        shards.append(current)
    return shards


def shard_file_name(weights_name: str, index: int, count: int) -> str:
    """model.safetensors -> model-00001-of-00003.safetensors"""
    stem, ext = os.path.splitext(weights_name)
    return f"{stem}-{index + 1:05d}-of-{count:05d}{ext}"


def write_sharded(
    folder: str,
    weights_name: str,
    sizes: Mapping[str, int],
    write_shard: Callable[[str, list[str]], None],
    max_shard_size: int | str,
) -> list[str]:
    """Write one file, or shards plus `<weights_name>.index.json`; `write_shard(path, names)` writes one file."""
    shards = plan_shards(sizes, max_shard_size)
    stale = [f for f in os.listdir(folder) if re.fullmatch(re.escape(os.path.splitext(weights_name)[0]) + r"-\d{5}-of-\d{5}" + re.escape(os.path.splitext(weights_name)[1]), f)]
    for f in stale + [weights_name, weights_name + INDEX_SUFFIX]:
        if os.path.exists(os.path.join(folder, f)):
            os.remove(os.path.join(folder, f))
    if len(shards) == 1:
        path = os.path.join(folder, weights_name)
        write_shard(path, shards[0])
        return [path]
    written, weight_map = [], {}
    for i, names in enumerate(shards):
        file_name = shard_file_name(weights_name, i, len(shards))
        write_shard(os.path.join(folder, file_name), names)
        written.append(os.path.join(folder, file_name))
        weight_map.update({n: file_name for n in names})
    index = {"metadata": {"total_size": int(sum(sizes.values()))}, "weight_map": weight_map}
    with open(os.path.join(folder, weights_name + INDEX_SUFFIX), "w", encoding="utf-8") as fh:
        json.dump(index, fh, indent=2, sort_keys=True)
    return written


def write_safetensors(path: str, tensors: Iterable[tuple[str, np.ndarray, str]], metadata: dict | None = None) -> None:
    """Write (name, array, dtype name) triples; a 'bfloat16' array is given as uint16 bit patterns."""
    tags = {v: k for k, v in DTYPE_NAMES.items()}
    tensors = list(tensors)
    header, offset = {}, 0
    for name, array, dtype in tensors:
        nbytes = array.size * array.itemsize
        header[name] = {"dtype": tags[dtype], "shape": list(array.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt", **(metadata or {})}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # align the data to 8 bytes
    # Written beside and renamed over: a reader may still have the old file memory-mapped.
    partial = path + ".partial"
    try:
        with open(partial, "wb") as fh:
            fh.write(struct.pack("<Q", len(encoded)))
            fh.write(encoded)
            for _, array, _ in tensors:
                fh.write(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_tf_h5(path: str, tensors: Iterable[tuple[str, np.ndarray]], model_class: str) -> None:
    """Write (TensorFlow name, array) pairs as a Keras-2 style `tf_model.h5`.

    Layout, as the established TensorFlow DeBERTa checkpoints have it: root attribute `layer_names` (the
    top-level layers: `deberta`, `cls`, `pooler`, ...); per layer a group with attribute `weight_names`,
    holding datasets named `<layer>/<model prefix>/<weight name>:0`.
    """
    import h5py

    prefix = weight_names.TF_MODEL_PREFIX[model_class]
    with h5py.File(path, "w") as f:
        groups: dict[str, list[str]] = {}
        for name, array in tensors:
            layer = name.split("/", 1)[0]
            full = f"{prefix}/{name}:0"
            f.require_group(layer).create_dataset(full, data=array)
            groups.setdefault(layer, []).append(full)
        for layer, names in groups.items():
            write_h5_string_list(f[layer], "weight_names", names)
        write_h5_string_list(f, "layer_names", list(groups))
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"


def write_tf_h5_shard(path: str, tensors: Iterable[tuple[str, np.ndarray]]) -> None:
    """Write one shard of a sharded `tf_model.h5`: datasets named by the weight names themselves (no
    model prefix), listed in the root attribute `layer_names`, as the established tools shard them."""
    import h5py

    with h5py.File(path, "w") as f:
        names = []
        for name, array in tensors:
            f.create_dataset(f"{name}:0", data=array)
            names.append(f"{name}:0")
        write_h5_string_list(f, "layer_names", names)


# ----------------------------------------------------------------------------- matching a checkpoint to a model
def match_weights(
    reader: CheckpointReader,
    model_shapes: Mapping[str, tuple[int, ...]],
    model_class: str,
    base_model_prefix: str = "deberta",
    ignore_mismatched_sizes: bool = False,
) -> tuple[dict[str, str], dict[str, list]]:
    """Pair a checkpoint's weights with a model's, both under PyTorch names and layouts.

    Returns ({model name: checkpoint name} to load, {"unexpected_keys", "mismatched_keys"}). A bare-model
    checkpoint fits a head model and the reverse (the `deberta.` prefix is added or stripped). A shape that
    differs is a CheckpointError naming the key and both shapes, unless `ignore_mismatched_sizes`; a weight
    stored as integers is always one.
    """
    names = [n for n in reader.keys() if not weight_names.IGNORED_PT_KEYS.search(n)]
    mapping = weight_names.add_or_strip_base_prefix(names, set(model_shapes), base_model_prefix + ".")
    to_load, unexpected, mismatched = {}, [], []
    for ckpt_name, model_name in mapping.items():
        if model_name not in model_shapes:
            unexpected.append(ckpt_name)
            continue
        stored, expected = tuple(reader.shape(ckpt_name)), tuple(model_shapes[model_name])
        if stored != expected:
            if not ignore_mismatched_sizes:
                raise CheckpointError(
                    f"{reader.folder}: weight {ckpt_name!r} has shape {stored} in the checkpoint but {expected} "
                    f"in {model_class} (config mismatch?); pass ignore_mismatched_sizes=True to initialise it "
                    f"anew instead"
                )
            mismatched.append((ckpt_name, stored, expected))
            continue
        reader.check_floating(ckpt_name)
        to_load[model_name] = ckpt_name
    return to_load, {"unexpected_keys": unexpected, "mismatched_keys": mismatched}


def report_loading(logger, model_class: str, folder: str, info: Mapping[str, list]) -> None:
    """Warn about newly initialised, unused and re-initialised weights, as both backends report them."""
    if info["missing_keys"]:
        logger.warning("%s: newly initialised (not in %s): %s", model_class, folder, info["missing_keys"])
    if info["unexpected_keys"]:
        logger.warning("%s: unused weights in %s: %s", model_class, folder, info["unexpected_keys"])
    for name, stored, expected in info["mismatched_keys"]:
        logger.warning("%s: %s re-initialised: checkpoint shape %s, model shape %s", model_class, name, stored, expected)
