"""fusedadam: torch.optim.Adam / AdamW, stepped at the memory-bandwidth limit."""
from .optimizer import FusedAdam, FusedAdamW
from .torch_state import to_torch_state_dict

__version__ = "0.1.0"
__all__ = ["FusedAdam", "FusedAdamW", "to_torch_state_dict", "__version__"]
