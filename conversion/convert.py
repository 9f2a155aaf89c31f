"""Convert a DeBERTa checkpoint folder between PyTorch and TensorFlow files, streaming tensor by tensor.

The names and layouts come from `deberta_common.weight_names`, the file formats from
`deberta_common.checkpoints`: the same code `from_pretrained` uses. Output goes to a temporary folder
beside the destination and is renamed into place only after it was written and verified.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np

from deberta_common import checkpoints, rules, weight_names
from deberta_common.checkpoints import CheckpointError, CheckpointReader
from deberta_common.config import CONFIG_NAME, DebertaConfig

HEADS = ("Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
         "ForMultipleChoice")
FORMATS = {"pt": ("safetensors", "bin"), "tf": ("h5",)}
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
# Largest |difference| allowed in verification, relative to the largest |output| (at least 1).
TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 1e-1}


class ConversionError(RuntimeError):
    """The conversion cannot go on; nothing was left at the destination."""


@dataclass
class Plan:
    config: DebertaConfig
    head: str
    names: list[str]  # PyTorch names to write, in order


# ----------------------------------------------------------------------------- what to convert
def detect_head(config: DebertaConfig, names: list[str]) -> str:
    """The head class suffix ("ForMaskedLM", ...) from config.architectures, else from the weight names."""
    for arch in config.architectures or []:
        suffix = re.sub(r"^(TF)?Deberta", "", arch)
        if suffix in HEADS:
            return suffix
    if any(n.startswith(("cls.predictions.", "lm_predictions.")) for n in names):
        return "ForMaskedLM"
    if any(n.startswith("qa_outputs.") for n in names):
        return "ForQuestionAnswering"
    if any(n.startswith("classifier.") for n in names):
        return "ForSequenceClassification" if any(n.startswith("pooler.") for n in names) else "ForTokenClassification"
    return "Model"


def expected_shapes(config: DebertaConfig, head: str) -> dict[str, tuple[int, ...]]:
    """{PyTorch name: shape} of a model of this config and head, built on the meta device (no memory)."""
    import torch

    import deberta_pt

    with torch.device("meta"):
        model = getattr(deberta_pt, "Deberta" + head)(config)
    tied = model._tied_keys()
    return {n: tuple(t.shape) for n, t in model.state_dict().items() if n not in tied}


def plan_conversion(reader: CheckpointReader, config: DebertaConfig, model_class: str,
                    log: Callable[[str], None] = print) -> Plan:
    """Check every source tensor against the model the config describes; name what does not fit."""
    source = [n for n in reader.keys() if not weight_names.IGNORED_PT_KEYS.search(n)]
    rules.fit_config_to_weights(config, source)
    head = detect_head(config, source) if model_class == "auto" else model_class
    expected = expected_shapes(config, head)
    if head != "Model" and not any(n.startswith("deberta.") for n in source):
        raise ConversionError(f"{reader.folder}: holds only the bare model's weights, not the {head} head")
    if head == "Model" and any(n.startswith("deberta.") for n in source):
        dropped = [n for n in source if not n.startswith("deberta.")]
        log(f"--model-class Model: leaving out the head weights {dropped}")
        source = [n for n in source if n.startswith("deberta.")]
    # The original checkpoints keep an absolute position table even where position_biased_input is false
    # (their masked-LM decoder uses it): carry it over rather than drop it.
    extra = {}
    if not config.position_biased_input:
        prefix = "deberta." if any(n.startswith("deberta.") for n in source) else ""
        extra[prefix + "embeddings.position_embeddings.weight"] = (config.max_position_embeddings, config.embedding_size)
    known = dict(expected)
    known.update(extra)
    if head == "Model" and any(n.startswith("deberta.") for n in source):
        known = {"deberta." + n if not n.startswith("deberta.") else n: s for n, s in known.items()}
    tied = weight_names.TIED_PT_KEYS
    unknown = [n for n in source if n not in known and n not in tied]
    if unknown:
        raise ConversionError(
            f"{reader.folder}: weights that a Deberta{head} model does not have: {unknown} "
            f"(wrong --model-class, or not a DeBERTa v1 checkpoint?)"
        )
    for name in source:
        if name in known and tuple(reader.shape(name)) != tuple(known[name]):
            raise ConversionError(
                f"{reader.folder}: weight {name!r} has shape {tuple(reader.shape(name))}, but config.json describes "
                f"{tuple(known[name])}"
            )
    missing = [n for n, _ in known.items() if n not in source and n not in extra]
    if missing:
        in_head = [n for n in missing if head != "Model" and not n.startswith("deberta.")]
        what = f"the {head} head" if len(in_head) == len(missing) else "weights"
        raise ConversionError(f"{reader.folder}: the checkpoint lacks {what}: {missing}")
    return Plan(config=config, head=head, names=[n for n in source if n not in tied])


def check_single_source(reader: CheckpointReader, full_compare_bytes: int = 2 * 10**9) -> None:
    """A folder with weights in several formats (common in published checkpoints) is converted from the
    preferred one only if the others hold the same tensors: every value is compared when the checkpoint is
    under `full_compare_bytes`, else names, shapes and eight tensors spread over the model."""
    others = []
    for fmt in checkpoints.WEIGHT_FILES:
        if fmt != reader.format:
            try:
                others.append(CheckpointReader(reader.folder, prefer=(fmt,)))
            except FileNotFoundError:
                continue
    names = sorted(n for n in reader.keys() if not weight_names.IGNORED_PT_KEYS.search(n) and n not in weight_names.TIED_PT_KEYS)
    total = sum(int(np.prod(reader.shape(n))) * checkpoints.itemsize(reader.dtype(n)) for n in names)
    compared = names if total <= full_compare_bytes else names[:: max(1, len(names) // 8)]
    for other in others:
        theirs = sorted(n for n in other.keys() if not weight_names.IGNORED_PT_KEYS.search(n) and n not in weight_names.TIED_PT_KEYS)
        files = f"{os.path.basename(reader.files[0])} and {os.path.basename(other.files[0])}"
        if theirs != names:
            raise ConversionError(f"{reader.folder}: {files} hold different weights "
                                  f"(only in one: {sorted(set(names) ^ set(theirs))[:10]}); remove the one not wanted")
        for name in names:
            if tuple(reader.shape(name)) != tuple(other.shape(name)) or (
                    name in compared and not np.array_equal(reader.numpy(name), other.numpy(name))):
                raise ConversionError(f"{reader.folder}: {files} disagree on {name!r}; remove the one not wanted")


# ----------------------------------------------------------------------------- streaming copy
def _converted(reader: CheckpointReader, name: str, dtype: Optional[str]) -> tuple[np.ndarray, str]:
    """(array, dtype name) as it will be stored: float tensors cast to `dtype`, bfloat16 as bit patterns."""
    stored = reader.dtype(name)
    if dtype is None or stored not in FLOAT_DTYPES or stored == dtype:
        return reader.raw(name), stored
    values = reader.numpy(name)
    if dtype == "bfloat16":
        return checkpoints.float32_to_bf16_bits(values.astype(np.float32)), "bfloat16"
    return values.astype(dtype), dtype


def write_weights(
    reader: CheckpointReader, plan: Plan, folder: str, fmt: str, dtype: Optional[str], max_shard_size: str,
    log: Callable[[str], None],
) -> list[str]:
    """Write the plan's tensors to `folder` in `fmt`, one shard in memory at a time."""
    def stored_size(name: str) -> int:
        stored = reader.dtype(name)
        target = dtype if dtype and stored in FLOAT_DTYPES else stored
        return int(np.prod(reader.shape(name))) * checkpoints.itemsize(target)

    sizes = {name: stored_size(name) for name in plan.names}
    total = sum(sizes.values())
    counter = {"done": 0}

    def tensors(names: list[str]) -> Iterator[tuple[str, np.ndarray, str]]:
        for name in names:
            array, stored = _converted(reader, name, dtype)
            yield name, array, stored

    def progress(path: str, names: list[str]) -> None:
        counter["done"] += sum(sizes[n] for n in names)
        log(f"wrote {os.path.basename(path)}: {len(names)} tensors, {counter['done'] / 1e6:.1f} of {total / 1e6:.1f} MB")

    if fmt == "safetensors":
        def write_shard(path: str, names: list[str]) -> None:
            checkpoints.write_safetensors(path, tensors(names))
            progress(path, names)

        return checkpoints.write_sharded(folder, checkpoints.SAFE_WEIGHTS_NAME, sizes, write_shard, max_shard_size)

    if fmt == "bin":
        import torch

        from deberta_pt.pretrained import tensor_from_raw

        def write_shard(path: str, names: list[str]) -> None:
            torch.save({n: tensor_from_raw(a, d) for n, a, d in tensors(names)}, path)
            progress(path, names)

        return checkpoints.write_sharded(folder, checkpoints.PT_WEIGHTS_NAME, sizes, write_shard, max_shard_size)

    def tf_tensors(names: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        for name, array, stored in tensors(names):
            if stored == "bfloat16":  # h5 has no bfloat16: widen, which is exact
                array = checkpoints.bf16_bits_to_float32(array)
            tf_name, transposed = weight_names.pt_to_tf(name)
            yield tf_name, (np.ascontiguousarray(array.T) if transposed else array)

    def write_h5(path: str, names: list[str]) -> None:
        if os.path.basename(path) == checkpoints.TF_WEIGHTS_NAME:
            checkpoints.write_tf_h5(path, tf_tensors(names), "Deberta" + plan.head)
        else:
            checkpoints.write_tf_h5_shard(path, tf_tensors(names))
        progress(path, names)

    return checkpoints.write_sharded(folder, checkpoints.TF_WEIGHTS_NAME, sizes, write_h5, max_shard_size)


def copy_other_files(src: str, dst: str) -> list[str]:
    """Tokenizer files and anything else that is not weights or config.json travel unchanged."""
    weight_file = re.compile(r"^(model|pytorch_model|tf_model)(-\d{5}-of-\d{5})?\.(safetensors|bin|h5)(\.index\.json)?$")
    copied = []
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if name == CONFIG_NAME or weight_file.match(name) or not os.path.isfile(path):
            continue
        shutil.copy2(path, os.path.join(dst, name))
        copied.append(name)
    return copied


# ----------------------------------------------------------------------------- verification
def _verification_batch(config: DebertaConfig, head: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    length = min(16, config.max_position_embeddings)
    ids = rng.integers(0, config.vocab_size, size=(2, length), dtype=np.int64)
    mask = np.ones((2, length), dtype=np.int64)
    mask[1, length // 2:] = 0
    batch = {"input_ids": np.where(mask == 1, ids, config.pad_token_id), "attention_mask": mask}
    if config.type_vocab_size > 0:
        batch["token_type_ids"] = rng.integers(0, config.type_vocab_size, size=(2, length), dtype=np.int64)
    if head == "ForMultipleChoice":  # one question with two choices
        batch = {k: v[None] for k, v in batch.items()}
    return batch


def run_model(folder: str, framework: str, head: str, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Load `folder` in one framework (float32) and return its outputs on `batch` as numpy arrays."""
    if framework == "pt":
        import torch

        import deberta_pt

        model = getattr(deberta_pt, "Deberta" + head).from_pretrained(folder, torch_dtype=torch.float32)
        with torch.no_grad():
            out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
        return {k: v.detach().numpy() for k, v in out.items()}
    import deberta_tf

    model = getattr(deberta_tf, "TFDeberta" + head).from_pretrained(folder)
    out = model(batch, training=False)
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items() if v is not None}


def verify(src: str, src_framework: str, dst: str, dst_framework: str, head: str, config: DebertaConfig,
           dtype: str, log: Callable[[str], None]) -> dict[str, float]:
    """Run source and converted checkpoints on one padded batch; raise if they differ beyond the dtype's tolerance."""
    batch = _verification_batch(config, head)
    before = run_model(src, src_framework, head, batch)
    after = run_model(dst, dst_framework, head, batch)
    diffs = {}
    for key, ref in before.items():
        diffs[key] = float(np.max(np.abs(ref - after[key]))) if ref.size else 0.0
        limit = TOLERANCE[dtype] * max(1.0, float(np.max(np.abs(ref))))
        log(f"verify {key}: max |difference| {diffs[key]:.3g} (tolerance {limit:.3g})")
        if not diffs[key] <= limit:
            raise ConversionError(f"verification failed: {key} differs by {diffs[key]:.3g} > {limit:.3g}")
    return diffs


# ----------------------------------------------------------------------------- the whole conversion
def convert(
    src: str,
    dst: str,
    to: str,
    fmt: Optional[str] = None,
    dtype: Optional[str] = None,
    model_class: str = "auto",
    max_shard_size: str = "2GB",
    verify_outputs: bool = True,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> str:
    """Convert checkpoint folder `src` into `dst` for framework `to` ("pt" or "tf"). Returns `dst`."""
    if to not in FORMATS:
        raise ConversionError(f"--to must be pt or tf, got {to!r}")
    fmt = fmt or FORMATS[to][0]
    if fmt not in FORMATS[to]:
        raise ConversionError(f"--format {fmt} does not fit --to {to} (choose from {', '.join(FORMATS[to])})")
    if dtype is not None and dtype not in FLOAT_DTYPES:
        raise ConversionError(f"--dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
    if dtype == "bfloat16" and fmt == "h5":
        raise ConversionError("tf_model.h5 cannot hold bfloat16 (HDF5 has no such type); use float32 or float16")
    if model_class != "auto" and model_class not in HEADS:
        raise ConversionError(f"--model-class must be auto or one of {HEADS}, got {model_class!r}")
    src, dst = os.path.abspath(src), os.path.abspath(dst)
    if not os.path.isdir(src):
        raise ConversionError(f"source folder not found: {src}")
    if not os.path.isfile(os.path.join(src, CONFIG_NAME)):
        raise ConversionError(f"{src}: no {CONFIG_NAME}, which says the model's shape; a checkpoint folder needs one")
    if os.path.exists(dst) and (not os.path.isdir(dst) or os.listdir(dst)) and not overwrite:
        raise ConversionError(f"{dst} exists and is not empty; pass --overwrite to replace it")
    if os.path.exists(dst) and os.path.samefile(src, dst):
        raise ConversionError("source and destination are the same folder")

    config = DebertaConfig.from_pretrained(src)
    try:
        reader = CheckpointReader(src)
    except FileNotFoundError as err:
        raise ConversionError(str(err)) from err
    check_single_source(reader)
    plan = plan_conversion(reader, config, model_class, log)
    log(f"{src}: {reader.format} checkpoint of Deberta{plan.head if plan.head != 'Model' else 'Model'}, "
        f"{len(plan.names)} tensors -> {to} ({fmt}{', ' + dtype if dtype else ''})")

    parent = os.path.dirname(dst) or "."
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.partial-", dir=parent)
    except OSError as err:
        raise ConversionError(f"cannot write {dst}: {err.strerror or err}") from err
    try:
        out_config = DebertaConfig.from_dict(config.to_dict())
        # The PyTorch class name in both cases, as the established TensorFlow tools write it too.
        out_config.architectures = ["Deberta" + plan.head]
        if dtype:
            out_config.torch_dtype = dtype
        out_config.save_pretrained(tmp)
        write_weights(reader, plan, tmp, fmt, dtype, max_shard_size, log)
        copy_other_files(src, tmp)
        if verify_outputs:
            verify(src, "tf" if reader.format == "h5" else "pt", tmp, to, plan.head, config, dtype or "float32", log)
        _replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {dst}")
    return dst


def _replace(tmp: str, dst: str) -> None:
    """Move the finished folder into place; an existing destination is removed only after that succeeds."""
    if not os.path.exists(dst):
        os.rename(tmp, dst)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.old-", dir=os.path.dirname(dst))
    os.rmdir(old)
    os.rename(dst, old)
    try:
        os.rename(tmp, dst)
    except BaseException:
        os.rename(old, dst)
        raise
    shutil.rmtree(old, ignore_errors=True)
