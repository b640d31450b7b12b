"""fusedadam's state_dict in the format torch.optim.Adam / AdamW keep: what a user hands to torch's optimizers, or
to any tool that reads torch's optimizer checkpoints, after training with options torch does not have."""
from __future__ import annotations

import copy
from typing import Any

import torch

from .precision import ABSMAX_KEYS, COMPENSATION_KEY, MASTER_KEY, MOMENT_MAPS, PRECISION_DEFAULTS
from .sharded_absmax import dequantize_moment_of

# Group options torch's optimizers do not know.
_FUSEDADAM_OPTIONS = (*PRECISION_DEFAULTS, "rounding_seed", "backend")


def to_torch_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A copy of FusedAdam(W).state_dict() that torch.optim.Adam(W).load_state_dict() takes: 8-bit moments decoded
    to fp32 (torch's loader casts them to each parameter's dtype), and the master copies, Kahan compensations,
    absmaxes and fusedadam's group options dropped. The input is not modified."""
    if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
        raise ValueError("state_dict must be a dict with 'state' and 'param_groups', as returned by state_dict()")
    state = {}
    for pid, entry in state_dict["state"].items():
        converted = {}
        for key, value in entry.items():
            if key in ABSMAX_KEYS.values() or key in (MASTER_KEY, COMPENSATION_KEY):
                continue
            if key in MOMENT_MAPS and isinstance(value, torch.Tensor) and value.dtype == torch.uint8:
                absmax = entry.get(ABSMAX_KEYS[key])
                if not isinstance(absmax, torch.Tensor):
                    raise ValueError(f"state_dict['state'][{pid!r}][{key!r}] holds 8-bit codes but its "
                                     f"{ABSMAX_KEYS[key]!r} is missing: the codes cannot be decoded without it")
                value = dequantize_moment_of(value, absmax, MOMENT_MAPS[key])
            elif isinstance(value, torch.Tensor):
                value = value.clone()
            converted[key] = value
        state[pid] = converted
    groups = [{k: copy.deepcopy(v) for k, v in group.items() if k not in _FUSEDADAM_OPTIONS}
              for group in state_dict["param_groups"]]
    return {"state": state, "param_groups": groups}
