"""Optional native CPU kernels (native.c), compiled on first use with the system's C compiler and called through ctypes.

One kernel so far: `add_transposed`, the add of p2c's transposed band into the scores (`add_relative_scores`), which
PyTorch's CPU add reads one element per row: 3.5 ms per block of a 2 x 512 deberta-base forward against 1.3 for the
same add of c2p's band (docs/performance.md). Nothing depends on it: without a compiler, where compiling fails, or with
DEBERTA_ZOO_NATIVE=0, the same sums run as PyTorch operations.

Also here, though not compiled by us: `linear`, the dense layers' float32 product by oneDNN (which PyTorch ships) in
place of PyTorch's default BLAS (MKL) on the CPUs where it is faster.

The library is built with `$CC` (default `cc`) and `-O3 -march=native -fopenmp` into `$DEBERTA_ZOO_CACHE` (default
`~/.cache/deberta-zoo`), under a name that hashes the source, the command and the CPU's flags, so that a cache shared
by several machines never hands one a binary built for another.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Optional

import torch

SOURCE = Path(__file__).with_name("native.c")
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]

_lock = threading.Lock()
_loaded: dict = {}  # (compiler, cache settings) -> the loaded library, or None where building or loading it failed


def enabled() -> bool:
    """Whether the native kernels may be used: DEBERTA_ZOO_NATIVE is not 0 / false / off."""
    return os.environ.get("DEBERTA_ZOO_NATIVE", "1").lower() not in ("0", "false", "off", "no")


def cache_dir() -> Path:
    if os.environ.get("DEBERTA_ZOO_CACHE"):
        return Path(os.environ["DEBERTA_ZOO_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deberta-zoo"


def cpu_flags() -> str:
    """The CPU's feature flags (Linux), which -march=native compiles for; the machine's name elsewhere."""
    try:
        with open("/proc/cpuinfo") as fh:
            return next((line for line in fh if line.startswith(("flags", "Features"))), platform.machine())
    except OSError:
        return platform.machine()


@functools.cache
def cpu_vendor() -> str:
    """The CPU's vendor_id (Linux: "AuthenticAMD", "GenuineIntel"); "" where /proc/cpuinfo does not say."""
    try:
        with open("/proc/cpuinfo") as fh:
            line = next((line for line in fh if line.startswith("vendor_id")), "")
    except OSError:
        return ""
    return line.partition(":")[2].strip()


def compiler() -> list:
    """The compiler command with its flags: `$CC` (default `cc`), split as a shell would, then FLAGS."""
    return shlex.split(os.environ.get("CC", "cc")) + FLAGS


def library_path() -> Path:
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), " ".join(compiler()).encode(), cpu_flags().encode()]))
    return cache_dir() / f"native-{key.hexdigest()[:16]}.so"


def build(path: Path) -> None:
    """Compiles native.c to `path`, through a temporary file in the same folder renamed into place, so that no
    half-written library is ever loaded (by this process or another building it at the same time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        command = compiler() + [str(SOURCE), "-o", temporary]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def library() -> Optional[ctypes.CDLL]:
    """The compiled native.c, built on the first call of a process where its cache holds none; None where the kernels
    are disabled or it cannot be built or loaded (warned once per library)."""
    if not enabled():
        return None
    settings = tuple(os.environ.get(name) for name in ("CC", "DEBERTA_ZOO_CACHE", "XDG_CACHE_HOME"))
    if settings in _loaded:
        return _loaded[settings]
    with _lock:
        if settings not in _loaded:
            lib = None
            try:
                path = library_path()
                if not path.exists():
                    build(path)
                lib = ctypes.CDLL(str(path))
                lib.add_transposed.restype = None
                lib.add_transposed.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int64] * 10 + [
                    ctypes.c_int]
            except (OSError, RuntimeError) as error:
                warnings.warn(
                    f"deberta_pt: native CPU kernels unavailable, using PyTorch operations instead ({error}); set "
                    "DEBERTA_ZOO_NATIVE=0 to not try", RuntimeWarning, stacklevel=3,
                )
            _loaded[settings] = lib
    return _loaded[settings]


def add_transposed(target: torch.Tensor, value: torch.Tensor) -> bool:
    """target += value for (B, H, m, n) float32 CPU tensors where value is a transposed view (unit stride along m)
    and target has unit stride along n, in the native kernel; False, and nothing done, where it does not apply
    (another dtype, device or layout, autograd recording, tracing, or no native library)."""
    if not (
        target.dim() == value.dim() == 4 and target.shape == value.shape
        and target.dtype == value.dtype == torch.float32 and target.device.type == value.device.type == "cpu"
        and target.stride(-1) == 1 and value.stride(-2) == 1
        and not (torch.is_grad_enabled() and (target.requires_grad or value.requires_grad))
        and not (torch.compiler.is_compiling() or torch.jit.is_tracing())
    ):
        return False
    lib = library()
    if lib is None:
        return False
    batch, heads, rows, cols = target.shape
    lib.add_transposed(
        target.data_ptr(), value.data_ptr(), batch, heads, rows, cols, *target.stride()[:3],
        value.stride(0), value.stride(1), value.stride(3), torch.get_num_threads(),
    )
    return True


def onednn_preferred() -> bool:
    """Whether `linear` multiplies with oneDNN: as DEBERTA_ZOO_ONEDNN (1 / 0, true / false, on / off) says where it is
    set; otherwise on AMD CPUs, where oneDNN's float32 products made a deberta-base forward 3 to 13 % faster than
    MKL's (two machines, docs/performance.md). Not by default elsewhere: on Intel CPUs MKL is not known to be slower."""
    setting = os.environ.get("DEBERTA_ZOO_ONEDNN", "").lower()
    if setting:
        return setting not in ("0", "false", "off", "no")
    return cpu_vendor() == "AuthenticAMD"


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """F.linear(x, weight, bias), (..., in) -> (..., out), by oneDNN's product where it applies: float32 CPU
    tensors, autograd not recording, no autocast, not traced, `onednn_preferred` and oneDNN built in; None where it
    does not (the caller multiplies as usual). Exact to float32 rounding, not bitwise equal to F.linear."""
    if not (
        x.dtype == weight.dtype == torch.float32 and x.device.type == weight.device.type == "cpu"
        and (bias is None or bias.dtype == torch.float32)
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                              or (bias is not None and bias.requires_grad)))
        and not (torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling() or torch.jit.is_tracing())
        and onednn_preferred() and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    ):
        return None
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
