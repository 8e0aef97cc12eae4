"""longvq_ref: the exact PyTorch reference of the LongVQ model (the oracle of the C++ engine).

The contract is shared/design/longvq-model.md; docs/file-formats.md describes the files.
"""
import os

# One BLAS thread unless the caller asks otherwise: deterministic, and no oversubscription when
# several reference processes share this machine's cores. Must be set before torch loads BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .config import Config, ConfigError
from .model import LongVQModel
from .state import LayerState, State, StateError

__all__ = ["Config", "ConfigError", "LongVQModel", "State", "LayerState", "StateError"]
