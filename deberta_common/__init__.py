"""What both backends share: config, tokenizers, checkpoint files and the PyTorch <-> TensorFlow name table.

Imports numpy only, never torch or tensorflow, so either backend works without the other installed.
"""

from .config import ConfigError, DebertaConfig
from .tokenization import DebertaTokenizer
from .tokenization_fast import DebertaTokenizerFast
from .tokenization_utils import BatchEncoding, TokenizerError

__all__ = ["BatchEncoding", "ConfigError", "DebertaConfig", "DebertaTokenizer", "DebertaTokenizerFast", "TokenizerError"]
