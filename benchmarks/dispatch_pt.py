"""The launch cost of our PyTorch model, measured on any machine: what bounds an eager step on a GPU wherever the
kernels are short (see "Results on a GPU" in docs/performance.md).

    python benchmarks/dispatch_pt.py
    python benchmarks/dispatch_pt.py --shapes 32x128,16x512,4x2048

Kernels: the operations one layer dispatches that launch a kernel (views and allocations left out; autograd's
`slice_backward` counts as its two, a zero fill and a copy), forward alone and forward + backward, counted with
a `TorchDispatchMode` on the CPU at each shape of the deberta-base layout (12 heads, span 512, relative blocks
of 256); the count depends on the length, the span and the block only, so the hidden size is shrunk to 96.
Host ms: one step of a 12-layer model with hidden 96, 2 heads and span 16 at 1 x 64 on one thread, whose time
is almost all Python and dispatch, with the relative scores in one block and in blocks of 8 (8 per direction,
as deberta-base has at L = 2048).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench import BASE_SHAPE

import deberta_pt
from deberta_common import DebertaConfig

# views, allocations, and the scalars Python numbers become (0-dim CPU tensors, no kernel on a GPU)
NO_KERNEL = {"view", "_unsafe_view", "transpose", "permute", "slice", "select", "expand", "unsqueeze", "squeeze",
             "diagonal", "alias", "split", "split_with_sizes", "unbind", "t", "as_strided", "detach",
             "_reshape_alias", "lift_fresh", "empty", "empty_like", "new_empty", "new_empty_strided",
             "empty_strided", "scalar_tensor"}


class KernelCount(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name not in NO_KERNEL:
            self.count += 2 if name == "slice_backward" else 1
        return out


def set_block(model: torch.nn.Module, block: int) -> None:
    for module in model.modules():
        if isinstance(module, deberta_pt.modeling.DisentangledSelfAttention):
            module.relative_block = block


def layer_kernels(batch: int, length: int, train: bool) -> int:
    torch.manual_seed(0)
    config = DebertaConfig(**dict(BASE_SHAPE, hidden_size=96, intermediate_size=384, num_hidden_layers=1))
    model = deberta_pt.DebertaModel(config).train(train)
    layer, encoder = model.encoder.layer[0], model.encoder
    mask = encoder.get_attention_mask(torch.ones(batch, length, dtype=torch.long))
    hidden = torch.randn(batch, length, config.hidden_size, requires_grad=train)
    with torch.set_grad_enabled(train):
        rel_embeddings = encoder.get_rel_embeddings(length, hidden.device)  # once per forward, not per layer
    with torch.set_grad_enabled(train), KernelCount() as counter:
        out = layer(hidden, mask, rel_embeddings=rel_embeddings)[0]
        if train:
            out.sum().backward()
    return counter.count


def host_ms(train: bool, block: int, repeats: int = 7) -> float:
    torch.manual_seed(0)
    config = DebertaConfig(**dict(BASE_SHAPE, hidden_size=96, num_attention_heads=2, intermediate_size=384,
                                  vocab_size=1000, max_relative_positions=16))
    model = deberta_pt.DebertaForMaskedLM(config).train(train)
    set_block(model, block)
    ids = torch.randint(5, 900, (1, 64))

    def step():
        if train:
            model(input_ids=ids, labels=ids).loss.backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode():
                model(input_ids=ids)

    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(5):
            step()
        times.append((time.perf_counter() - start) / 5 * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="32x128,16x512,4x2048")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| shape | kernels per layer, inference | kernels per layer, training (forward + backward) |")
    print("|---|---|---|")
    for shape in args.shapes.split(","):
        batch, length = (int(x) for x in shape.split("x"))
        print(f"| {shape} | {layer_kernels(batch, length, False)} | {layer_kernels(batch, length, True)} |")
    print()
    print("| host ms per step (toy model, 1 x 64, one thread) | one block | blocks of 8 |")
    print("|---|---|---|")
    for train in (False, True):
        print(f"| {'training' if train else 'inference'} | {host_ms(train, 256):.1f} | {host_ms(train, 8):.1f} |")


if __name__ == "__main__":
    main()
