"""Write tiny checkpoints with the established DeBERTa implementation (Hugging Face transformers 4.x).

Run by hand, in a separate environment that has transformers 4.x, torch, tensorflow and tf-keras:
    python scripts/make_reference_fixtures.py tests/fixtures/reference
It writes, per case, a folder holding what that implementation saves (config.json, model.safetensors,
pytorch_model.bin, tf_model.h5) plus `inputs.npz` and `expected.npz`: a padded batch and the reference
implementation's own outputs for it. The test suite reads these files and never needs transformers.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import torch
import transformers

CASES = {
    # name: (PyTorch class, config)
    "mlm_relative": ("DebertaForMaskedLM", dict(relative_attention=True, position_biased_input=False,
                                                 pos_att_type="c2p|p2c", max_relative_positions=6)),
    "seqcls_absolute": ("DebertaForSequenceClassification", dict(type_vocab_size=2, num_labels=3)),
    "qa_relative": ("DebertaForQuestionAnswering", dict(relative_attention=True, pos_att_type=["p2c", "c2p"])),
}
BASE = dict(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
            max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def main(out_dir: str) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for name, (cls_name, extra) in CASES.items():
        folder = os.path.join(out_dir, name)
        config = transformers.DebertaConfig(**BASE, **extra)
        model = getattr(transformers, cls_name)(config).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.2)
            model.tie_weights()
        model.save_pretrained(folder, safe_serialization=True)
        model.save_pretrained(folder, safe_serialization=False)
        tf_model = getattr(transformers, "TF" + cls_name).from_pretrained(folder, from_pt=True)
        tf_model.save_pretrained(folder)  # tf_model.h5
        ids = rng.integers(1, 64, size=(2, 9))
        mask = np.ones((2, 9), dtype=np.int64)
        mask[1, 5:] = 0
        ids[1, 5:] = 0
        inputs = {"input_ids": ids, "attention_mask": mask}
        if config.type_vocab_size:
            inputs["token_type_ids"] = rng.integers(0, 2, size=(2, 9))
        with torch.no_grad():
            out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, output_hidden_states=True)
        expected = {k: v.numpy() for k, v in out.items() if torch.is_tensor(v)}
        expected["last_hidden_state"] = out.hidden_states[-1].numpy()
        np.savez(os.path.join(folder, "inputs.npz"), **inputs)
        np.savez(os.path.join(folder, "expected.npz"), **expected)
        with open(os.path.join(folder, "SOURCE.txt"), "w") as fh:
            fh.write(f"Written by scripts/make_reference_fixtures.py with transformers {transformers.__version__} "
                     f"({cls_name} and TF{cls_name}, random weights).\n")


if __name__ == "__main__":
    main(sys.argv[1])
