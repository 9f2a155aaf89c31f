"""The Triton attention kernels (`attn_implementation="triton"`, GPUs): their checks run on this CPU, each in a process
of its own (tests/triton_checks.py): under Triton's interpreter, which Triton picks when the kernel is defined, and
without it. Triton is installed beside the venv (.venv/triton, by the Makefile) and seen by those processes only:
torch imports an installed Triton when Dynamo loads, and pytest's process has imported TensorFlow, after which
importing Triton aborts (both bring LLVM)."""

import os
import subprocess
import sys
import pytest

pytestmark = pytest.mark.slow  # subprocesses
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRITON = os.path.join(REPO, ".venv", "triton")


@pytest.mark.skipif(not os.path.isdir(TRITON), reason="no .venv/triton: `make test` installs it (Linux only)")
@pytest.mark.parametrize("check, interpreted", [("kernel", True), ("dropout", True), ("model", True),
                                                ("training", True), ("fallback", True), ("cpu", False)])
def test_triton_kernel(check, interpreted):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests"), TRITON]))
    env.pop("TRITON_INTERPRET", None)
    if interpreted:
        env["TRITON_INTERPRET"] = "1"
    run = subprocess.run([sys.executable, os.path.join(REPO, "tests", "triton_checks.py"), check],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stdout + run.stderr
