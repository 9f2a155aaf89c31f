"""Where the time of our PyTorch model goes: wall time per step against the summed kernel time, the kernel
launches per step, and the kernels that take the most device time, at a few (mode, shape) cases.

    python benchmarks/profile_pt.py --device cuda --dtype bfloat16 --cases infer:32x128,infer:4x2048,train:4x2048
    python benchmarks/profile_pt.py --device cuda --dtype bfloat16 --cases infer:4x2048 --attn-implementation triton

Wall time far above the kernel time means the host (Python, dispatch, launches) is the limit, not the GPU.
"""

from __future__ import annotations

import argparse
import time

from bench import BASE_SHAPE


def profile_case(mode: str, batch: int, length: int, device: str, dtype: str, steps: int, top: int,
                 attn_implementation: str) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import deberta_pt
    from deberta_common import DebertaConfig

    torch.manual_seed(0)
    cls = deberta_pt.DebertaForMaskedLM if mode == "train" else deberta_pt.DebertaModel
    config = DebertaConfig(**BASE_SHAPE, attn_implementation=attn_implementation)
    model = cls(config).to(device=device, dtype=getattr(torch, dtype))
    model.train(mode == "train")
    ids = torch.randint(5, BASE_SHAPE["vocab_size"], (batch, length), device=device)
    mask = torch.ones(batch, length, dtype=torch.long, device=device)
    labels = torch.where(torch.rand(batch, length, device=device) < 0.15, ids, -100)

    def step():
        if mode == "train":
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode():
                model(input_ids=ids, attention_mask=mask)

    def synchronize():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):
        step()
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    wall = (time.perf_counter() - start) / steps
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * (device == "cuda")
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"] if device == "cuda" else []
    kernel_us = sum(e.self_device_time_total for e in events) / steps
    launches = sum(e.count for e in events) / steps
    print(f"## {mode} {batch}x{length} {dtype} {attn_implementation}: {wall * 1e3:.2f} ms/step wall, {kernel_us / 1e3:.2f} ms/step in "
          f"kernels, {launches:.0f} kernels/step")
    print(prof.key_averages().table(sort_by="self_device_time_total" if events else "self_cpu_time_total",
                                    row_limit=top, max_name_column_width=60))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--cases", default="infer:8x128", help="comma-separated MODE:BxL, MODE infer or train")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15, help="rows of the kernel table")
    parser.add_argument("--attn-implementation", default="sdpa", choices=("sdpa", "eager", "triton"))
    args = parser.parse_args()
    for case in args.cases.split(","):
        mode, shape = case.split(":")
        batch, length = (int(x) for x in shape.split("x"))
        profile_case(mode, batch, length, args.device, args.dtype, args.steps, args.top, args.attn_implementation)


if __name__ == "__main__":
    main()
