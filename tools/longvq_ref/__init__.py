"""longvq_ref: the exact PyTorch reference of the LongVQ model (the oracle of the C++ engine).

The contract is shared/design/longvq-model.md; docs/file-formats.md describes the files.
"""
from .config import Config, ConfigError
from .model import LongVQModel
from .state import LayerState, State, StateError

__all__ = ["Config", "ConfigError", "LongVQModel", "State", "LayerState", "StateError"]
