"""Where `from_pretrained(name)` finds a checkpoint: a local folder, or a checkpoint shipped inside this package.

There is no download. The embedded names are the only names that are not paths.
"""

from __future__ import annotations

import os

_MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")

# Checkpoints installed with the package (package data): name -> folder.
EMBEDDED_CHECKPOINTS: dict[str, str] = {
    "deberta-zoo/tiny-mlm": os.path.join(_MODELS_DIR, "tiny-mlm"),
}


def resolve_checkpoint(path: str | os.PathLike) -> str:
    """The local folder for `path` (a folder, or an embedded name such as "deberta-zoo/tiny-mlm"); anything
    else is an error that says so (there is no hub to fetch from)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        # A local folder wins over an embedded name, as a folder of that name is what the user has in hand.
        return path
    if os.path.exists(path):
        raise NotADirectoryError(f"{path} is a file; from_pretrained takes a checkpoint folder (config.json + weights)")
    if path in EMBEDDED_CHECKPOINTS:
        folder = EMBEDDED_CHECKPOINTS[path]
        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise FileNotFoundError(
                f"the embedded checkpoint {path!r} is missing from this installation (expected {folder}); "
                f"reinstall deberta-zoo, or rebuild it with scripts/train_demo_model.py"
            )
        return folder
    raise FileNotFoundError(
        f"no checkpoint folder at {path!r}: from_pretrained reads local folders only (nothing is downloaded); "
        f"the embedded checkpoints are {sorted(EMBEDDED_CHECKPOINTS)}"
    )
