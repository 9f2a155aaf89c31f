"""The Triton attention kernel (`attn_implementation="triton"`, GPUs): its checks run on this CPU, each in a process
of its own (tests/triton_checks.py): under Triton's interpreter, which Triton picks when the kernel is defined, and
without it. Triton is never imported here: pytest's process has loaded TensorFlow, and importing Triton after it
aborts (both bring LLVM)."""

import os
import subprocess
import sys
from importlib.util import find_spec

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(find_spec("triton") is None, reason="Triton ships for Linux only")
@pytest.mark.parametrize("check, interpreted", [("kernel", True), ("model", True), ("fallback", True), ("cpu", False)])
def test_triton_kernel(check, interpreted):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")]))
    env.pop("TRITON_INTERPRET", None)
    if interpreted:
        env["TRITON_INTERPRET"] = "1"
    run = subprocess.run([sys.executable, os.path.join(REPO, "tests", "triton_checks.py"), check],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stdout + run.stderr
