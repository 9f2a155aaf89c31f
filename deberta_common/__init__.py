"""What both backends share: config, tokenizers, checkpoint files and the PyTorch <-> TensorFlow name table.

Imports numpy only, never torch or tensorflow, so either backend works without the other installed.
"""

from .config import ConfigError, DebertaConfig

__all__ = ["ConfigError", "DebertaConfig"]
