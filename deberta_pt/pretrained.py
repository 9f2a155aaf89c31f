"""`DebertaPreTrainedModel`: weight init, tying, and loading/saving checkpoint folders in PyTorch."""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from deberta_common import checkpoints, rules, weight_names
from deberta_common.checkpoints import CheckpointReader
from deberta_common.config import DebertaConfig
from deberta_common.hub import resolve_checkpoint

logger = logging.getLogger("deberta_pt")


def tensor_from_raw(raw: np.ndarray, dtype: str) -> torch.Tensor:
    """A stored array (bfloat16 as uint16 bit patterns) as a torch tensor of `dtype`, copied off the file."""
    if dtype == "bfloat16":
        return torch.from_numpy(raw.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.array(raw))


def tensor_from_checkpoint(reader: CheckpointReader, name: str) -> torch.Tensor:
    """One checkpoint tensor as a torch tensor in its stored dtype (bfloat16 included)."""
    return tensor_from_raw(reader.raw(name), reader.dtype(name))


def _numpy_for_file(tensor: torch.Tensor) -> tuple[np.ndarray, str]:
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(np.uint16), "bfloat16"
    return tensor.numpy(), str(tensor.dtype).replace("torch.", "")


def _full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a sharded (FSDP2 DTensor) parameter, a collective every rank joins; else itself."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


class DebertaPreTrainedModel(nn.Module):
    """Base of every DeBERTa PyTorch model: `from_pretrained`, `save_pretrained`, init and tying."""

    config_class = DebertaConfig
    base_model_prefix = "deberta"

    def __init__(self, config: DebertaConfig) -> None:
        if not isinstance(config, DebertaConfig):
            raise TypeError(f"expected a DebertaConfig, got {type(config).__name__}")
        super().__init__()
        self.config = config

    # ------------------------------------------------------------------ init and tying
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def post_init(self) -> None:
        self.apply(self._init_weights)
        self.tie_weights()

    def tie_weights(self) -> None:
        """The legacy MLM decoder shares the word-embedding matrix (unless `tie_word_embeddings` is false)."""
        output = self.get_output_embeddings()
        if output is not None and getattr(self.config, "tie_word_embeddings", True):
            output.weight = self.get_input_embeddings().weight

    def get_output_embeddings(self) -> Optional[nn.Linear]:
        return None

    def get_input_embeddings(self) -> nn.Embedding:
        return getattr(self, self.base_model_prefix).get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        getattr(self, self.base_model_prefix).set_input_embeddings(value)

    def resize_token_embeddings(self, new_num_tokens: int) -> nn.Embedding:
        """Grow or shrink the vocabulary: old rows are kept, new rows initialised; MLM biases follow."""
        old = self.get_input_embeddings()
        new = nn.Embedding(new_num_tokens, old.embedding_dim, padding_idx=old.padding_idx,
                           device=old.weight.device, dtype=old.weight.dtype)
        self._init_weights(new)
        keep = min(new_num_tokens, old.num_embeddings)
        with torch.no_grad():
            new.weight[:keep] = old.weight[:keep]
        self.set_input_embeddings(new)
        self.config.vocab_size = new_num_tokens
        for module in self.modules():
            if self._has_vocab_bias(module, old.num_embeddings):
                bias = torch.zeros(new_num_tokens, dtype=module.bias.dtype, device=module.bias.device)
                bias[:keep] = module.bias.detach()[:keep]
                module.bias = nn.Parameter(bias)
        output = self.get_output_embeddings()
        if output is not None:
            output.out_features = new_num_tokens
        self.tie_weights()
        return new

    @staticmethod
    def _has_vocab_bias(module: nn.Module, vocab_size: int) -> bool:
        """The MLM heads keep their output bias (vocab_size,) as a parameter of their own."""
        bias = getattr(module, "bias", None)
        return (not isinstance(module, (nn.Linear, nn.LayerNorm)) and isinstance(bias, nn.Parameter)
                and tuple(bias.shape) == (vocab_size,))

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each layer's activations in the backward pass instead of storing them."""
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = False

    def _return_dict(self, return_dict: Optional[bool]) -> bool:
        return True if return_dict is None else bool(return_dict)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        config: Optional[DebertaConfig] = None,
        ignore_mismatched_sizes: bool = False,
        torch_dtype: Any = None,
        output_loading_info: bool = False,
        **config_overrides: Any,
    ):
        """Load a checkpoint folder (config.json plus safetensors, .bin or tf_model.h5, sharded or not).

        A bare-model checkpoint loads into a head model and the reverse. Missing weights are newly
        initialised and reported, as are unexpected ones; a shape mismatch is an error unless
        `ignore_mismatched_sizes=True`. `torch_dtype`: a torch dtype, its name, or "auto" (the stored dtype).
        """
        folder = resolve_checkpoint(path)
        reader = CheckpointReader(folder, prefer=("safetensors", "bin", "h5"))
        if config is None:
            config = DebertaConfig.from_pretrained(folder, **config_overrides)
            rules.fit_config_to_weights(config, reader.keys())
        model = cls(config)
        info = model.load_checkpoint(reader, ignore_mismatched_sizes=ignore_mismatched_sizes)
        if torch_dtype == "auto":
            float_names = [n for n in reader.keys() if reader.dtype(n).startswith(("float", "bfloat"))]
            torch_dtype = reader.dtype(float_names[0]) if float_names else None
        if torch_dtype is not None:
            model.to(getattr(torch, torch_dtype) if isinstance(torch_dtype, str) else torch_dtype)
        model.eval()
        return (model, info) if output_loading_info else model

    def load_checkpoint(self, reader: CheckpointReader, ignore_mismatched_sizes: bool = False) -> dict[str, list]:
        """Copy the reader's weights into this model; returns missing, unexpected and mismatched keys."""
        model_state = self.state_dict()
        to_load, info = checkpoints.match_weights(
            reader, {n: tuple(t.shape) for n, t in model_state.items()}, type(self).__name__,
            self.base_model_prefix, ignore_mismatched_sizes,
        )
        with torch.no_grad():  # one tensor at a time: peak memory is the model plus its largest weight
            for name, ckpt_name in to_load.items():
                model_state[name].copy_(tensor_from_checkpoint(reader, ckpt_name))
        tied = self._tied_keys()
        info = {"missing_keys": [n for n in model_state if n not in to_load and not (n in tied and tied[n] in to_load)],
                **info}
        self.tie_weights()
        checkpoints.report_loading(logger, type(self).__name__, reader.folder, info)
        return info

    def _tied_keys(self) -> dict[str, str]:
        """{tied weight name: the name it is saved under}, for the ties this model has."""
        if self.get_output_embeddings() is None or not getattr(self.config, "tie_word_embeddings", True):
            return {}
        return dict(weight_names.TIED_PT_KEYS)

    # ------------------------------------------------------------------ saving
    def save_pretrained(
        self, directory: str | os.PathLike, safe_serialization: bool = True, max_shard_size: int | str = "5GB"
    ) -> list[str]:
        """Write config.json and `model.safetensors` (or `pytorch_model.bin`), sharded past max_shard_size.

        Tied weights are saved once, under the word embeddings' name. Returns the weight files written.
        Under torch.distributed call it on every rank: sharded (FSDP) weights are gathered, and rank 0
        alone writes an ordinary checkpoint.
        """
        directory = os.fspath(directory)
        tied = self._tied_keys()
        state = {n: _full_tensor(t) for n, t in self.state_dict().items() if n not in tied}
        if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
            return []
        os.makedirs(directory, exist_ok=True)
        # FSDP wraps the class in a subclass of its own: record the model class it came from.
        self.config.architectures = [next(c.__name__ for c in type(self).__mro__ if c.__module__ == "deberta_pt.modeling")]
        self.config.save_pretrained(directory)
        sizes = {n: t.numel() * t.element_size() for n, t in state.items()}
        if safe_serialization:
            def write_shard(path: str, names: list[str]) -> None:
                checkpoints.write_safetensors(path, ((n, *_numpy_for_file(state[n])) for n in names))

            return checkpoints.write_sharded(directory, checkpoints.SAFE_WEIGHTS_NAME, sizes, write_shard, max_shard_size)

        def write_bin(path: str, names: list[str]) -> None:
            torch.save({n: state[n].detach().cpu().contiguous() for n in names}, path)

        return checkpoints.write_sharded(directory, checkpoints.PT_WEIGHTS_NAME, sizes, write_bin, max_shard_size)
