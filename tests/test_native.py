"""The native CPU kernels (deberta_pt/native.c): the same sums as PyTorch's operations, a model that gives the
same outputs with them and without, and the fallback where they cannot be built."""

from __future__ import annotations

import os
import shutil
import warnings

import pytest
import torch

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
    """Full 16 x 16 tiles (registers on AVX-512) and partial ones at both edges; a target that is a slice of a
    wider buffer."""
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
