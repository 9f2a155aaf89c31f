"""Where `from_pretrained(name)` finds a checkpoint: a local folder. There is no download."""

from __future__ import annotations

import os


def resolve_checkpoint(path: str | os.PathLike) -> str:
    """The local folder for `path`; anything else is an error that says so (there is no hub to fetch from)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise NotADirectoryError(f"{path} is a file; from_pretrained takes a checkpoint folder (config.json + weights)")
    raise FileNotFoundError(
        f"no checkpoint folder at {path!r}: from_pretrained reads local folders only (nothing is downloaded)"
    )
