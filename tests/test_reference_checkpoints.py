"""Checkpoints written by the established DeBERTa implementation load and give its outputs.

The files under tests/fixtures/reference/ were written by scripts/make_reference_fixtures.py with
Hugging Face transformers (PyTorch safetensors and .bin, TensorFlow tf_model.h5), together with that
implementation's own outputs on a padded batch (expected.npz).
"""

import json
import os

import numpy as np
import pytest
import torch

import deberta_pt

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "reference")
CASES = sorted(os.listdir(FIXTURES))
FORMATS = {"safetensors": ("model.safetensors",), "bin": ("pytorch_model.bin",), "h5": ("tf_model.h5",)}


def case_folder(tmp_path, case: str, fmt: str) -> str:
    """A copy of the case holding only config.json and the weight file of one format."""
    folder = tmp_path / f"{case}-{fmt}"
    folder.mkdir()
    for name in ("config.json",) + FORMATS[fmt]:
        (folder / name).write_bytes(open(os.path.join(FIXTURES, case, name), "rb").read())
    return str(folder)


def load_case(case: str):
    inputs = dict(np.load(os.path.join(FIXTURES, case, "inputs.npz")))
    expected = dict(np.load(os.path.join(FIXTURES, case, "expected.npz")))
    with open(os.path.join(FIXTURES, case, "config.json")) as fh:
        architecture = json.load(fh)["architectures"][0]
    return inputs, expected, architecture


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("case", CASES)
def test_pytorch_loads_reference_checkpoints(tmp_path, case, fmt):
    inputs, expected, architecture = load_case(case)
    model, info = getattr(deberta_pt, architecture).from_pretrained(
        case_folder(tmp_path, case, fmt), output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    valid = inputs["attention_mask"].astype(bool)
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    for key in ("logits", "start_logits", "end_logits", "last_hidden_state"):
        if key not in expected:
            continue
        got = (out[key] if key in out else model.deberta(**{k: torch.from_numpy(v) for k, v in inputs.items()})
               .last_hidden_state).detach().numpy()
        ref = expected[key]
        if ref.ndim >= 2 and ref.shape[:2] == valid.shape:
            # Valid positions only: for a padded query the reference attends uniformly to every key, where
            # the original DeBERTa (and this library) gives it an all-zero attention row.
            got, ref = got[valid], ref[valid]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5, err_msg=f"{case} {fmt} {key}")
