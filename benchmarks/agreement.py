"""Do the fast paths agree with the plain one on this device? The GPU half of the tests, which run on CPU only.

    python benchmarks/agreement.py                       # CPU
    python benchmarks/agreement.py --device cuda         # e.g. on the H100 before benchmarks/gpu.sh

At the microsoft/deberta-base shape (random weights, a padded batch, dropout off) it compares, against our plain
attention (`attn_implementation="eager"`) in float32: the masked-LM logits of the tokens, the loss and the
gradients of every weight, of our fused attention (float32 and bfloat16), of `torch.compile` on it (--compile),
of our Triton kernels (--triton, GPUs) and of the reference implementation when it is importable. Logits are compared in inference and in training
mode, since a GPU may pick another attention kernel when a gradient is needed. A float32 row must stay within 1e-5
of the largest value (2e-4 for gradients, which sum over the batch); a bfloat16 row within twice the error of our
plain attention run in bfloat16, or within bfloat16's rounding (2^-8), whichever is larger. Prints a table; exits 1
if a row fails.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import deberta_pt  # noqa: E402
from bench import BASE_SHAPE  # noqa: E402
from deberta_common import DebertaConfig  # noqa: E402


def run(model: torch.nn.Module, batch: dict, dtype: torch.dtype, compile: bool) -> tuple[torch.Tensor, ...]:
    """(logits of the tokens in inference, the same in training, loss, every gradient flattened), in float32.
    Both modes, since a GPU may pick another attention kernel when a gradient is needed; dropout is 0."""
    model = copy.deepcopy(model).to(dtype)
    fn = torch.compile(model) if compile else model
    token = batch["attention_mask"].bool()
    with torch.inference_mode():
        inference = fn.eval()(**batch).logits[token].float()
    out = fn.train()(**batch)
    out.loss.backward()
    grads = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
    return inference, out.logits[token].float().detach(), out.loss.float().detach(), grads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="4x256", help="BxL; the last row of the batch is half padding")
    parser.add_argument("--compile", action="store_true", help="also torch.compile our model")
    parser.add_argument("--triton", action="store_true", help='also attn_implementation="triton"')
    args = parser.parse_args()
    batch_size, length = (int(x) for x in args.shape.split("x"))

    torch.manual_seed(0)
    config = DebertaConfig(**BASE_SHAPE, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ids = torch.randint(5, config.vocab_size, (batch_size, length))
    mask = torch.ones(batch_size, length, dtype=torch.long)
    mask[-1, length // 2:] = 0
    labels = torch.where((torch.rand(batch_size, length) < 0.15) & mask.bool(), ids, -100)
    batch = {k: v.to(args.device) for k, v in dict(input_ids=ids, attention_mask=mask, labels=labels).items()}

    with tempfile.TemporaryDirectory() as folder:
        deberta_pt.DebertaForMaskedLM(config).save_pretrained(folder)
        plain = deberta_pt.DebertaForMaskedLM.from_pretrained(folder, attn_implementation="eager")
        fused = deberta_pt.DebertaForMaskedLM.from_pretrained(folder)
        rows = [("ours fused", fused, False)] + [("ours fused, compiled", fused, True)] * args.compile
        if args.triton:
            triton = deberta_pt.DebertaForMaskedLM.from_pretrained(folder, attn_implementation="triton")
            rows.append(("ours triton", triton, False))
        try:
            import transformers

            rows.append(("reference", transformers.DebertaForMaskedLM.from_pretrained(folder), False))
        except ImportError:
            pass
    plain = plain.to(args.device)
    truth = run(plain, batch, torch.float32, False)
    plain_bf16 = run(plain, batch, torch.bfloat16, False)
    names = ("logits (inference)", "logits (training)", "loss", "gradients")
    scales = [t.abs().max().item() for t in truth]
    bf16_error = [(a - b).abs().max().item() / s for a, b, s in zip(plain_bf16, truth, scales)]
    failed = False
    print(f"# {args.device}, deberta-base shape, {args.shape}; max |difference| / max |plain float32|")
    print("| implementation | dtype | " + " | ".join(names) + " | within |")
    print("|---|---|" + "---|" * len(names) + "---|")
    print("| ours plain | bfloat16 | " + " | ".join(f"{e:.1e}" for e in bf16_error) +
          " | (sets the bfloat16 limits: 2x, at least 2^-8) |")
    for name, model, compile in rows:
        for dtype in (torch.float32, torch.bfloat16):
            result = run(model.to(args.device), batch, dtype, compile)
            errors = [(a - b).abs().max().item() / s for a, b, s in zip(result, truth, scales)]
            if dtype == torch.float32:
                limits = [1e-5, 1e-5, 1e-5, 2e-4]
            else:
                limits = [max(2 * e, 2**-8) for e in bf16_error]
            ok = all(e <= limit for e, limit in zip(errors, limits))
            failed |= not ok
            print(f"| {name} | {str(dtype)[6:]} | " + " | ".join(f"{e:.1e}" for e in errors) +
                  f" | {'yes' if ok else 'NO: limits ' + ', '.join(f'{x:.0e}' for x in limits)} |", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
