"""Checks of the Triton attention kernel on CPU tensors, run by tests/test_triton_attention.py each in a process of
its own: under TRITON_INTERPRET=1 (Triton picks the interpreter when it compiles a kernel, i.e. at import), and
without it (`cpu`), since a process that has loaded TensorFlow first (pytest's) aborts when it imports Triton.

    TRITON_INTERPRET=1 python tests/triton_checks.py kernel|model|fallback
    python tests/triton_checks.py cpu
"""

from __future__ import annotations

import sys

import torch

import deberta_pt
from variants import make_batch, make_config


def direct(query, key, value, c2p, p2c, mask, offset, scale) -> torch.Tensor:
    """`relative_attention`'s formula in float64 with gathers: (B, H, L, d)."""
    length = query.shape[-2]
    scores = query.double() @ key.double().transpose(-1, -2)
    i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
    if c2p is not None:
        column = (i - j + offset).clamp(0, c2p.shape[-1] - 1)
        scores += torch.gather(c2p.double(), -1, column.expand_as(scores))
    if p2c is not None:  # p2c[j, i - j + offset], gathered as (key, query) and transposed
        column = (i - j + offset).clamp(0, p2c.shape[-1] - 1)
        scores += torch.gather(p2c.double(), -1, column.T.expand_as(scores)).transpose(-1, -2)
    scores *= scale
    if mask is None:
        return torch.softmax(scores, -1) @ value.double()
    pairs = mask if mask.dim() == 3 else mask[:, None, :].expand(-1, length, -1)
    scores = scores.masked_fill(~pairs[:, None], float("-inf"))
    out = torch.softmax(scores, -1).nan_to_num(0.0) @ value.double()
    return out * pairs.diagonal(dim1=-2, dim2=-1)[:, None, :, None]


def check_kernel() -> None:
    """Against `direct`: lengths across several blocks of queries and keys and not multiples of them, a head size
    that is not a power of 2, each term alone, right and left padding (a first block of keys all masked), pair
    masks of packed sequences (queries masked on the diagonal give 0)."""
    from deberta_pt import triton_attention

    assert triton_attention.INTERPRETED
    torch.manual_seed(0)
    cases = [  # B, H, L, d, W, offset, scale, dtype
        (2, 3, 70, 24, 40, 20, 0.3, torch.float32),  # distances beyond the span of 20 clamped
        (1, 2, 130, 64, 260, 130, 1.0, torch.float32),
        (2, 2, 100, 32, 64, 32, 0.5, torch.float16),  # bfloat16's products are wrong in Triton 3.9's interpreter
    ]
    for batch, heads, length, dim, width, offset, scale, dtype in cases:
        query, key, value = (torch.randn(batch, heads, length, dim, dtype=dtype) for _ in range(3))
        c2p, p2c = (torch.randn(batch, heads, length, width, dtype=dtype) for _ in range(2))
        mask = torch.ones(batch, length, dtype=torch.bool)
        mask[-1, length // 2:] = False
        mask[0, :67] = False
        segment = torch.arange(length) // 23  # sequences of 23 tokens packed into each row
        pairs = (segment[:, None] == segment[None, :]) & mask[:, None, :] & mask[:, :, None]
        tolerance = 1e-5 if dtype == torch.float32 else 2e-3
        for terms in [(c2p, p2c, mask), (c2p, None, mask), (None, p2c, None), (None, None, mask), (c2p, p2c, pairs)]:
            out = triton_attention.relative_attention(query, key, value, *terms, offset, scale)
            expected = direct(query, key, value, *terms, offset, scale)
            assert out.shape == expected.shape and out.dtype == dtype
            assert out.transpose(1, 2).is_contiguous()  # heads merge without a copy
            error = (out.double() - expected).abs().max().item()
            assert error <= tolerance * expected.abs().max().item(), (batch, heads, length, dim, dtype, error)
            if terms[2] is not None and terms[2].dim() == 2:
                assert (out.transpose(1, 2)[~terms[2]] == 0).all()


def models(variant: str, head: str) -> tuple:
    """The same weights with attn_implementation "sdpa" and "triton", in eval mode; the weights drawn wider than the
    init, so that mistakes show in the outputs."""
    config = make_config(variant)
    cls = getattr(deberta_pt, f"Deberta{head}")
    torch.manual_seed(0)
    default = cls(config).eval()
    with torch.no_grad():
        for parameter in default.parameters():
            parameter.normal_(0, 0.2)
    config.attn_implementation = "triton"
    kernel = cls(config).eval()
    kernel.load_state_dict(default.state_dict())
    return default, kernel


def count_calls() -> list:
    from deberta_pt import triton_attention

    calls = []
    original = triton_attention.relative_attention

    def counted(*args, **kwargs):
        calls.append(args[0].dtype)
        return original(*args, **kwargs)

    triton_attention.relative_attention = counted
    return calls


def check_model() -> None:
    """Whole models in inference equal the default path to 1e-5, the kernel taking every layer: relative
    distances within the span and clamped beyond it (`short_span`; L = 70 beyond the span of 64), each term
    alone, no relative attention, the Enhanced Mask Decoder (queries from other states), packed sequences (a
    (B, L, L) mask)."""
    calls = count_calls()
    cases = [("relative", "Model", 11), ("relative", "Model", 70), ("short_span", "Model", 11), ("c2p", "Model", 11),
             ("p2c", "Model", 11), ("absolute", "Model", 11), ("emd", "ForMaskedLM", 11), ("packed", "Model", 11)]
    for variant, head, length in cases:
        default, kernel = models("relative" if variant == "packed" else variant, head)
        batch = {k: torch.from_numpy(v) for k, v in make_batch(default.config, length=length).items()}
        if variant == "packed":  # two sequences in each row: the first 4 tokens, and the rest
            token = batch["attention_mask"].bool()
            segment = (torch.arange(length) >= 4).long()
            batch["attention_mask"] = (segment[:, None] == segment[None, :]) & token[:, None, :] & token[:, :, None]
        calls.clear()
        with torch.inference_mode():
            expected, out = default(**batch)[0], kernel(**batch)[0]
        layers = default.config.num_hidden_layers + (variant == "emd") * 2  # the decoder runs a layer twice
        assert len(calls) == layers, (variant, len(calls))
        error = (out - expected).abs().max().item()
        assert error <= 1e-5 * expected.abs().max().item(), (variant, length, error)

    # under autocast in its dtype, as the default path's attention (float16: the interpreter's bfloat16 products
    # are wrong), to that dtype's rounding
    default, kernel = models("relative", "Model")
    batch = {k: torch.from_numpy(v) for k, v in make_batch(default.config).items()}
    calls.clear()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.float16):
        expected, out = default(**batch)[0], kernel(**batch)[0]
    assert calls == [torch.float16] * default.config.num_hidden_layers
    error = (out.float() - expected.float()).abs().max().item()
    assert error <= 5e-3 * expected.abs().max().item(), error


def check_fallback() -> None:
    """Where the kernel does not apply the default path runs: a gradient, attention dropout in training, p2p,
    output_attentions."""
    calls = count_calls()
    default, kernel = models("relative", "Model")
    batch = {k: torch.from_numpy(v) for k, v in make_batch(default.config).items()}
    assert torch.equal(kernel(**batch)[0], default(**batch)[0])  # autograd records it
    with torch.inference_mode():
        kernel(**batch, output_attentions=True)
    for module in kernel.modules():
        if hasattr(module, "dropout") and hasattr(module, "attn_implementation"):
            module.dropout.p = 0.1
    with torch.no_grad():
        kernel.train()(**batch)
    default, kernel = models("p2p", "Model")
    with torch.inference_mode():
        assert torch.equal(kernel(**batch)[0], default(**batch)[0])
    assert not calls


def check_cpu() -> None:
    """Without the interpreter, CPU tensors take the default path, exactly, and Triton is not imported."""
    default, kernel = models("relative", "Model")
    batch = {k: torch.from_numpy(v) for k, v in make_batch(default.config).items()}
    with torch.inference_mode():
        assert torch.equal(kernel(**batch)[0], default(**batch)[0])
    assert "triton" not in sys.modules


if __name__ == "__main__":
    {"kernel": check_kernel, "model": check_model, "fallback": check_fallback, "cpu": check_cpu}[sys.argv[1]]()
    print("ok")
