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


def direct(query, key, value, pos_key, pos_query, mask, offset, scale, kept=None, dropout_p=0.0) -> torch.Tensor:
    """`relative_attention`'s formula with gathers, differentiable by autograd: (B, H, L, d) in float64; `kept`
    (B, H, L, L) the weights that dropout keeps."""
    length = query.shape[-2]
    scores = query @ key.transpose(-1, -2)
    i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
    if pos_key is not None:
        c2p = query @ pos_key.transpose(-1, -2)
        column = (i - j + offset).clamp(0, c2p.shape[-1] - 1)
        scores = scores + torch.gather(c2p, -1, column.expand_as(scores))
    if pos_query is not None:  # p2c[j, i - j + offset], gathered as (key, query) and transposed
        p2c = key @ pos_query.transpose(-1, -2)
        column = (i - j + offset).clamp(0, p2c.shape[-1] - 1)
        scores = scores + torch.gather(p2c, -1, column.T.expand_as(scores)).transpose(-1, -2)
    scores = scores * scale
    pairs = None
    if mask is not None:
        pairs = mask if mask.dim() == 3 else mask[:, None, :].expand(-1, length, -1)
        scores = scores.masked_fill(~pairs[:, None], float("-inf"))
    weights = torch.softmax(scores, -1).nan_to_num(0.0)
    if kept is not None:
        weights = weights * kept / (1 - dropout_p)
    out = weights @ value
    return out if pairs is None else out * pairs.diagonal(dim1=-2, dim2=-1)[:, None, :, None]


def inputs(batch, heads, length, dim, width, dtype, seed=0) -> list:
    """q, k, v (B, H, L, d) and position keys and queries (H, W, d), needing gradients."""
    torch.manual_seed(seed)
    tensors = [torch.randn(batch, heads, length, dim) for _ in range(3)] + [torch.randn(heads, width, dim) / 2
                                                                            for _ in range(2)]
    return [t.to(dtype).requires_grad_() for t in tensors]


def compare(out, expected, tolerance, what) -> None:
    error = (out.double() - expected.double()).abs().max().item()
    assert error <= tolerance * expected.abs().max().item(), (what, error, expected.abs().max().item())


def check_kernel() -> None:
    """Outputs and gradients (q, k, v, position keys and queries) against `direct` in float64: lengths across
    several blocks of queries and keys and not multiples of them, a head size that is not a power of 2, distances
    clamped beyond the span (the backward adds to shared entries) or none, each term alone, right and left padding
    (a first block of keys all masked), pair masks of packed sequences (queries masked on the diagonal give 0)."""
    from deberta_pt import triton_attention

    assert triton_attention.INTERPRETED
    cases = [  # B, H, L, d, W, offset, scale, dtype
        (2, 3, 70, 24, 40, 20, 0.3, torch.float32),  # distances beyond the span of 20 clamped
        (2, 2, 130, 64, 260, 130, 0.2, torch.float32),  # none clamped: the backward stores, not adds
        (2, 2, 100, 32, 64, 32, 0.2, torch.float16),  # bfloat16's products are wrong in Triton 3.9's interpreter
    ]
    for batch, heads, length, dim, width, offset, scale, dtype in cases:
        query, key, value, pos_key, pos_query = tensors = inputs(batch, heads, length, dim, width, dtype)
        mask = torch.ones(batch, length, dtype=torch.bool)
        mask[-1, length // 2:] = False
        mask[0, :67] = False
        assert mask.any(-1).all()
        segment = torch.arange(length) // 23  # sequences of 23 tokens packed into each row
        pairs = (segment[:, None] == segment[None, :]) & mask[:, None, :] & mask[:, :, None]
        tolerance = 1e-5 if dtype == torch.float32 else 3e-3
        for terms in [(pos_key, pos_query, mask), (pos_key, None, mask), (None, pos_query, None),
                      (None, None, mask), (pos_key, pos_query, pairs)]:
            out = triton_attention.relative_attention(query, key, value, *terms, offset, scale)
            expected = direct(*(t.double() for t in (query, key, value)),
                              *(None if t is None else t.double() for t in terms[:2]), terms[2], offset, scale)
            assert out.shape == expected.shape and out.dtype == dtype
            assert out.transpose(1, 2).is_contiguous()  # heads merge without a copy
            compare(out, expected, tolerance, (batch, length, dtype))
            if terms[2] is not None and terms[2].dim() == 2:
                assert (out.transpose(1, 2)[~terms[2]] == 0).all()
            grad = torch.randn_like(expected)
            used = [query, key, value] + [t for t in terms[:2] if t is not None]
            got = torch.autograd.grad(out, used, grad.to(dtype))
            want = torch.autograd.grad(expected, used, grad)
            for name, a, b in zip(("q", "k", "v", "position rows", "position rows"), got, want):
                assert a.dtype == dtype
                compare(a, b, tolerance * 4, (batch, length, dtype, "gradient", name))


def check_dropout() -> None:
    """Attention dropout: the weights kept are seen in the output with values set to the identity (d = L); with
    other values the output and the gradients equal `direct` with the same weights kept, the same seed drawing
    the same weights in forward and backward; about dropout_p of them are dropped, and another seed drops others."""
    from deberta_pt import triton_attention

    batch, heads, length, width, offset, scale, dropout_p = 2, 2, 16, 32, 16, 0.25, 0.3
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 12:] = False
    query, key, value, pos_key, pos_query = tensors = inputs(batch, heads, length, length, width, torch.float32)
    identity = torch.eye(length).expand(batch, heads, length, length).contiguous()
    with torch.no_grad():
        seen = triton_attention.relative_attention(query, key, identity, pos_key, pos_query, mask, offset, scale,
                                                   dropout_p, seed=1234)
        other = triton_attention.relative_attention(query, key, identity, pos_key, pos_query, mask, offset, scale,
                                                    dropout_p, seed=99)
    token = (mask[:, None, :, None] & mask[:, None, None, :]).expand_as(seen)  # pairs of tokens: weights above 0
    kept = seen != 0
    dropped = (~kept[token]).float().mean().item()
    assert abs(dropped - dropout_p) < 0.06, dropped
    assert (kept != (other != 0))[token].any()
    out = triton_attention.relative_attention(*tensors, mask, offset, scale, dropout_p, seed=1234)
    expected = direct(*(t.double() for t in tensors), mask, offset, scale, kept, dropout_p)
    compare(out, expected, 1e-5, "dropout output")
    grad = torch.randn_like(expected)
    for name, a, b in zip(("q", "k", "v", "pos_key", "pos_query"), torch.autograd.grad(out, tensors, grad.float()),
                          torch.autograd.grad(expected, tensors, grad)):
        compare(a, b, 4e-5, ("dropout gradient", name))


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


def check_training() -> None:
    """A masked-LM training step (dropout 0) through the kernels: the loss and every weight's gradient equal the
    default path's; with attention dropout the kernels run too (their own draws) and the loss stays finite."""
    from variants import make_labels

    calls = count_calls()
    for variant in ("relative", "short_span", "emd"):
        default, kernel = models(variant, "ForMaskedLM")
        batch = {k: torch.from_numpy(v) for k, v in make_batch(default.config).items()}
        labels = torch.from_numpy(make_labels("ForMaskedLM", default.config, make_batch(default.config))["labels"])
        results = []
        for model in (default, kernel):
            loss = model.train()(**batch, labels=labels).loss
            loss.backward()
            results.append((loss, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
        (expected, want), (loss, got) = results
        assert calls, variant
        calls.clear()
        torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
        assert got.keys() == want.keys()
        for name in want:  # as test_modeling_pt's fused against plain attention
            torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=f"{variant} {name}")
    for module in kernel.modules():
        if hasattr(module, "attn_implementation"):
            module.dropout.p = 0.1
    loss = kernel(**batch, labels=labels).loss
    loss.backward()
    assert calls and torch.isfinite(loss)


def check_fallback() -> None:
    """Where the kernels do not apply the default path runs: p2p, output_attentions, talking heads."""
    calls = count_calls()
    for variant in ("p2p", "talking_head"):
        default, kernel = models(variant, "Model")
        batch = {k: torch.from_numpy(v) for k, v in make_batch(default.config).items()}
        with torch.inference_mode():
            assert torch.equal(kernel(**batch)[0], default(**batch)[0])
    default, kernel = models("relative", "Model")
    with torch.inference_mode():
        assert torch.equal(kernel(**batch, output_attentions=True)[0], default(**batch, output_attentions=True)[0])
    assert not calls


def check_cpu() -> None:
    """Without the interpreter, CPU tensors take the default path, exactly, and Triton is not imported."""
    default, kernel = models("relative", "Model")
    batch = {k: torch.from_numpy(v) for k, v in make_batch(default.config).items()}
    with torch.inference_mode():
        assert torch.equal(kernel(**batch)[0], default(**batch)[0])
    assert "triton" not in sys.modules


if __name__ == "__main__":
    checks = {"kernel": check_kernel, "dropout": check_dropout, "model": check_model, "training": check_training,
              "fallback": check_fallback, "cpu": check_cpu}
    checks[sys.argv[1]]()
    print("ok")
