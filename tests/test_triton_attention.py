"""The Triton attention kernel (`attn_implementation="triton"`, GPUs): its checks run on this CPU under Triton's
interpreter, each in a process of its own (tests/triton_checks.py), since Triton picks the interpreter when the
kernel is defined."""

import os
import subprocess
import sys

import pytest
import torch

import deberta_pt
from variants import make_batch, make_config

pytest.importorskip("triton", reason="Triton ships for Linux only")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("check", ["kernel", "model", "fallback"])
def test_triton_kernel_under_the_interpreter(check):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")]))
    run = subprocess.run([sys.executable, os.path.join(REPO, "tests", "triton_checks.py"), check],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stdout + run.stderr


def test_triton_implementation_on_cpu_runs_the_default_path():
    """Without the interpreter the kernel does not run on CPU tensors: the default path does, exactly."""
    from deberta_pt import triton_attention

    if triton_attention.INTERPRETED:
        pytest.skip("TRITON_INTERPRET is set: the kernel runs on CPU tensors")
    config = make_config("relative")
    torch.manual_seed(0)
    default = deberta_pt.DebertaModel(config).eval()
    config.attn_implementation = "triton"
    kernel = deberta_pt.DebertaModel(config).eval()
    kernel.load_state_dict(default.state_dict())
    batch = {k: torch.from_numpy(v) for k, v in make_batch(config).items()}
    with torch.inference_mode():
        assert torch.equal(kernel(**batch).last_hidden_state, default(**batch).last_hidden_state)
