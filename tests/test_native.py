"""The native CPU kernels (deberta_pt/native.c): the same sums as PyTorch's operations, a model that gives the
same outputs with them and without, and the fallback where they cannot be built; the same for the oneDNN product
(`native.linear`)."""

from __future__ import annotations

import os
import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F

import deberta_pt
from deberta_pt import native
from variants import make_batch, make_config

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CC", "cc").split()[0]) is None, reason="no C compiler to build the native kernels"
)


def band_view(batch: int, heads: int, rows: int, cols: int, spacing: int, seed: int) -> torch.Tensor:
    """A (batch, heads, rows, cols) view with unit stride along rows and `spacing` between its columns, as p2c's
    band (`relative_band`), over a buffer of random values."""
    torch.manual_seed(seed)
    buffer = torch.randn(heads, batch, cols * spacing + rows)
    return buffer.as_strided((batch, heads, rows, cols), (buffer.stride(1), buffer.stride(0), 1, spacing))


@needs_compiler
@pytest.mark.parametrize("shape", [(2, 3, 48, 32), (1, 2, 37, 21), (2, 1, 16, 5), (1, 1, 3, 40), (1, 2, 64, 17)])
def test_add_transposed_matches_pytorch(shape):
    """Full tiles (16 x 16 in registers on AVX-512, 8 x 8 on AVX2) and partial ones at both edges; a target that is
    a slice of a wider buffer."""
    batch, heads, rows, cols = shape
    value = band_view(batch, heads, rows, cols, rows + 7, seed=sum(shape))
    buffer = torch.randn(batch, heads, rows, cols + 9)
    target = buffer[..., 4 : 4 + cols]
    expected = buffer.clone()
    expected[..., 4 : 4 + cols] += value
    assert native.add_transposed(target, value)
    assert torch.equal(buffer, expected)  # the columns beside the target untouched


@needs_compiler
def test_add_transposed_declines_what_it_does_not_cover():
    value = band_view(1, 2, 16, 16, 20, seed=0)
    target = torch.zeros(1, 2, 16, 16)
    assert not native.add_transposed(target.double(), value.double())
    assert not native.add_transposed(target, value.contiguous())  # unit stride along n, not m
    weight = torch.zeros(1, 2, 16, 16, requires_grad=True)
    assert not native.add_transposed(weight.clone(), value)
    assert not native.add_transposed(target[:, :, :8], value[:, :, :16, :8].transpose(-1, -2))  # shapes differ
    assert torch.equal(target, torch.zeros_like(target))


@needs_compiler
@pytest.mark.parametrize("block", [3, 32])
def test_model_matches_without_native_kernels(monkeypatch, block):
    """Inference with relative scores in blocks (full tiles at 48 x 32, partial ones at 3) gives the outputs of the
    PyTorch operations, and the kernel ran."""
    config = make_config("relative")
    torch.manual_seed(0)
    model = deberta_pt.DebertaModel(config).eval()
    for module in model.modules():
        if isinstance(module, deberta_pt.modeling.DisentangledSelfAttention):
            module.relative_block = block
    batch = {k: torch.from_numpy(v) for k, v in make_batch(config, length=48).items()}
    used = []
    kernel = native.add_transposed
    monkeypatch.setattr(native, "add_transposed", lambda target, value: used.append(kernel(target, value)) or used[-1])
    with torch.no_grad():
        monkeypatch.setenv("DEBERTA_ZOO_NATIVE", "0")
        plain = model(**batch).last_hidden_state
        assert used and not any(used)
        monkeypatch.setenv("DEBERTA_ZOO_NATIVE", "1")
        used.clear()
        fast = model(**batch).last_hidden_state
    assert used and all(used)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-6)


def test_build_failure_warns_and_falls_back(monkeypatch, tmp_path):
    """A compiler that fails: one warning naming the command, no file left in the cache, and PyTorch's add."""
    monkeypatch.setenv("DEBERTA_ZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # exits 1
    value = band_view(1, 1, 16, 16, 20, seed=0)
    target = torch.zeros(1, 1, 16, 16)
    with pytest.warns(RuntimeWarning, match="false -O3"):
        assert not native.add_transposed(target, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not native.add_transposed(target, value)  # not tried, nor warned, again
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with pytest.warns(RuntimeWarning, match="no-such-compiler"):
        assert native.library() is None


@needs_compiler
def test_library_is_built_once_per_compiler_and_source(monkeypatch, tmp_path):
    monkeypatch.setenv("DEBERTA_ZOO_CACHE", str(tmp_path))
    path = native.library_path()
    assert native.library() is not None and path.exists() and [p.name for p in tmp_path.iterdir()] == [path.name]
    modified = path.stat().st_mtime_ns
    native._loaded.clear()
    assert native.library() is not None and path.stat().st_mtime_ns == modified  # loaded, not built again
    monkeypatch.setenv("CC", os.environ.get("CC", "cc") + " -DUNUSED")
    assert native.library_path() != path


needs_onednn = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")),
    reason="this torch has no oneDNN linear",
)


@needs_onednn
@pytest.mark.parametrize("shape", [(2, 5, 24), (7, 24), (3, 4, 5, 24)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_onednn_linear_matches_f_linear(monkeypatch, shape, with_bias):
    monkeypatch.setenv("DEBERTA_ZOO_ONEDNN", "1")
    torch.manual_seed(len(shape))
    x, weight = torch.randn(shape), torch.randn(40, 24)
    bias = torch.randn(40) if with_bias else None
    with torch.no_grad():
        output = native.linear(x, weight, bias)
        torch.testing.assert_close(output, F.linear(x, weight, bias), rtol=1e-5, atol=1e-5)
        transposed = x.transpose(0, -2) if x.dim() > 2 else x.t().contiguous().t()  # a view that is not contiguous
        torch.testing.assert_close(native.linear(transposed, weight, bias), F.linear(transposed, weight, bias),
                                   rtol=1e-5, atol=1e-5)


@needs_onednn
def test_onednn_linear_declines_what_it_does_not_cover(monkeypatch):
    """None (the caller multiplies as usual) wherever the product is not a float32 CPU product outside autograd,
    autocast and tracing, or oneDNN is not preferred."""
    x, weight, bias = torch.randn(3, 8), torch.randn(4, 8), torch.randn(4)
    monkeypatch.setenv("DEBERTA_ZOO_ONEDNN", "1")
    with torch.no_grad():
        assert native.linear(x, weight, bias) is not None
        assert native.linear(x.double(), weight.double(), bias.double()) is None
        assert native.linear(x.bfloat16(), weight.bfloat16(), bias.bfloat16()) is None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert native.linear(x, weight, bias) is None
    assert native.linear(x, weight.requires_grad_(), bias) is None  # autograd records it
    with torch.no_grad():
        assert native.linear(x, weight, bias) is not None
        monkeypatch.setenv("DEBERTA_ZOO_ONEDNN", "0")
        assert native.linear(x, weight, bias) is None


def test_onednn_preferred_on_amd_unless_set(monkeypatch):
    monkeypatch.delenv("DEBERTA_ZOO_ONEDNN", raising=False)
    for vendor, preferred in (("AuthenticAMD", True), ("GenuineIntel", False), ("", False)):
        monkeypatch.setattr(native, "cpu_vendor", lambda vendor=vendor: vendor)
        assert native.onednn_preferred() is preferred
        for setting, forced in (("1", True), ("on", True), ("0", False), ("off", False)):
            monkeypatch.setenv("DEBERTA_ZOO_ONEDNN", setting)
            assert native.onednn_preferred() is forced
        monkeypatch.delenv("DEBERTA_ZOO_ONEDNN")


@needs_onednn
def test_model_matches_without_onednn(monkeypatch):
    """Inference takes the four dense products of every layer through oneDNN when it is preferred, and gives the
    outputs of PyTorch's own product; a training step (autograd recording) takes none of them."""
    config = make_config("relative")
    torch.manual_seed(0)
    model = deberta_pt.DebertaForMaskedLM(config).eval()
    batch = {k: torch.from_numpy(v) for k, v in make_batch(config, length=24).items()}
    calls = []
    product = native.linear
    monkeypatch.setattr(native, "linear", lambda *args: calls.append(product(*args)) or calls[-1])
    with torch.no_grad():
        monkeypatch.setenv("DEBERTA_ZOO_ONEDNN", "0")
        plain = model(**batch).logits
        assert calls and all(output is None for output in calls)
        calls.clear()
        monkeypatch.setenv("DEBERTA_ZOO_ONEDNN", "1")
        fast = model(**batch).logits
    assert sum(output is not None for output in calls) == 4 * config.num_hidden_layers
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    calls.clear()
    model.train()
    model(**batch, labels=batch["input_ids"]).loss.backward()
    assert calls and all(output is None for output in calls)
