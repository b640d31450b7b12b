"""fusedadam: torch.optim.Adam / AdamW, stepped at the memory-bandwidth limit."""
from .optimizer import FusedAdam, FusedAdamW

__version__ = "0.1.0"
__all__ = ["FusedAdam", "FusedAdamW", "__version__"]
