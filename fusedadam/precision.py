"""The low-memory and mixed-precision options: what a parameter's optimizer state is stored in, and how its
updated value is written back (csrc/param_update.h).

  master_weights=True     16-bit parameters get an fp32 copy in the state ("master_param"); the kernel updates
                          it and writes the rounded 16-bit parameter in the same pass. fp32/fp64 parameters are
                          their own master and are unaffected.
  state_dtype             exp_avg, exp_avg_sq (and max_exp_avg_sq): None keeps torch's choice (the parameter's
                          dtype; fp32 with master weights), torch.float32, torch.bfloat16, or "8bit": one byte per
                          element and one fp32 absmax per block of 256 ("<moment>_absmax"), on the maps of
                          quantization.py; tensors under quantization.SMALLEST_QUANTIZED elements keep fp32 moments.
                          Math is fp32.
  rounding="stochastic"   bf16 parameters without master weights are rounded stochastically: unbiased, and
                          reproducible for a given rounding_seed and step.
  kahan_summation=True    bf16 parameters without master weights carry what rounding dropped in a bf16 buffer
                          ("kahan_compensation") into the next step.
Only the native backends (cpu, cuda, triton) run these; anything else is a clear error.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .quantization import SIGNED, SMALLEST_QUANTIZED, UNSIGNED, BLOCK, FloatMap

# The group options, with the defaults that keep torch's behaviour exactly.
PRECISION_DEFAULTS = dict(master_weights=False, state_dtype=None, rounding="nearest", kahan_summation=False)
ROUNDINGS = ("nearest", "stochastic")
EIGHT_BIT = "8bit"
STATE_DTYPES = (None, torch.float32, torch.bfloat16, EIGHT_BIT)
# How 8-bit moments are held: uint8 codes shaped (and strided) like the parameter.
CODES_DTYPE = torch.uint8
SIXTEEN_BIT = (torch.float16, torch.bfloat16)

# Codes of csrc/param_update.h ParamUpdate.
PARAM_UPDATE_CODES = {"nearest": 0, "master": 1, "stochastic": 2, "kahan": 3}

MOMENT_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
# Each 8-bit moment's block absmaxes (fp32, one per BLOCK elements of the moment in memory order) and its map.
ABSMAX_KEYS = {key: f"{key}_absmax" for key in MOMENT_KEYS}
MOMENT_MAPS: dict[str, FloatMap] = {"exp_avg": SIGNED, "exp_avg_sq": UNSIGNED, "max_exp_avg_sq": UNSIGNED}
MASTER_KEY = "master_param"
COMPENSATION_KEY = "kahan_compensation"


@dataclass(frozen=True)
class Precision:
    """How one parameter's step stores things: its moments' dtype and its write-back (a PARAM_UPDATE_CODES key)."""

    state_dtype: torch.dtype
    update: str = "nearest"

    @property
    def master(self) -> bool:
        return self.update == "master"

    @property
    def compensation(self) -> bool:
        return self.update == "kahan"

    @property
    def quantized(self) -> bool:
        """True for 8-bit moments: uint8 codes plus a block absmax tensor each."""
        return self.state_dtype == CODES_DTYPE

    def is_torchs(self, param_dtype: torch.dtype) -> bool:
        """True when this is torch.optim.Adam's own storage, which every backend runs."""
        return self.update == "nearest" and self.state_dtype == param_dtype

    def moment_keys(self, amsgrad: bool) -> tuple[str, ...]:
        return MOMENT_KEYS if amsgrad else MOMENT_KEYS[:2]

    def state_keys(self, amsgrad: bool) -> tuple[str, ...]:
        """The state tensors a kernel reads and writes beside the parameter, in table order."""
        moments = self.moment_keys(amsgrad)
        absmaxes = tuple(ABSMAX_KEYS[key] for key in moments) if self.quantized else ()
        return (moments + absmaxes + ((MASTER_KEY,) if self.master else ())
                + ((COMPENSATION_KEY,) if self.compensation else ()))

    def dtype_of(self, key: str) -> torch.dtype:
        if key in ABSMAX_KEYS.values():
            return torch.float32
        return {MASTER_KEY: torch.float32, COMPENSATION_KEY: torch.bfloat16}.get(key, self.state_dtype)

    def moment_bytes(self) -> float:
        """Bytes one moment holds per element: 8-bit codes carry a 4-byte absmax per block."""
        return 1 + 4 / BLOCK if self.quantized else self.state_dtype.itemsize

    def bytes_held(self, param_dtype: torch.dtype, amsgrad: bool = False) -> float:
        """Bytes per parameter that live between steps: the parameter and its state (the gradient not counted)."""
        state = self.moment_bytes() * (3 if amsgrad else 2)
        return param_dtype.itemsize + state + 4 * self.master + 2 * self.compensation

    def bytes_moved(self, param_dtype: torch.dtype, amsgrad: bool = False) -> float:
        """Bytes per parameter one step reads and writes: g, m, v (vmax) read; m, v (vmax) written; p read and
        written, or with master weights the master read and written and p only written; the compensation read
        and written."""
        moments = self.moment_bytes() * (4 if not amsgrad else 6)
        param = param_dtype.itemsize
        params = (param + 8) if self.master else 2 * param
        return param + moments + params + 4 * self.compensation


def precision_of(group: dict, param_dtype: torch.dtype, numel: int) -> Precision:
    """The Precision a group's options give a parameter of `param_dtype` with `numel` elements (options checked
    already)."""
    sixteen_bit = param_dtype in SIXTEEN_BIT
    master = group.get("master_weights", False) and sixteen_bit
    state_dtype = group.get("state_dtype")
    if state_dtype is None or not param_dtype.is_floating_point or param_dtype == torch.float64:
        state_dtype = torch.float32 if master else param_dtype
    elif state_dtype == EIGHT_BIT:
        state_dtype = CODES_DTYPE if numel >= SMALLEST_QUANTIZED else torch.float32
    update = "nearest"
    if master:
        update = "master"
    elif param_dtype == torch.bfloat16 and group.get("kahan_summation", False):
        update = "kahan"
    elif param_dtype == torch.bfloat16 and group.get("rounding", "nearest") == "stochastic":
        update = "stochastic"
    return Precision(state_dtype, update)


def check_precision_options(group: dict, where: str = "") -> None:
    """Raises ValueError for a bad value or combination of the group's precision options."""
    for flag in ("master_weights", "kahan_summation"):
        if not isinstance(group.get(flag, False), bool):
            raise ValueError(f"{flag}{where} must be True or False, got {group[flag]!r}")
    rounding = group.get("rounding", "nearest")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding{where} must be 'nearest' or 'stochastic', got {rounding!r}")
    state_dtype = group.get("state_dtype")
    if not any(state_dtype is d or (isinstance(d, str) and state_dtype == d) for d in STATE_DTYPES):
        raise ValueError(f"state_dtype{where} must be None (the parameter's dtype), torch.float32, torch.bfloat16 or "
                         f"'8bit', got {state_dtype!r}")
    seed = group.get("rounding_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"rounding_seed{where} must be an integer in [0, 2**64), got {seed!r}")
    if group.get("kahan_summation", False) and rounding == "stochastic":
        raise ValueError(f"kahan_summation=True and rounding='stochastic'{where} are two cures for the same loss; "
                         "choose one")
    if group.get("master_weights", False) and (group.get("kahan_summation", False) or rounding == "stochastic"):
        raise ValueError(f"master_weights=True{where} already keeps every update in fp32; kahan_summation and "
                         "rounding='stochastic' are for bf16 parameters without master weights: drop one")


def precision_unsupported_reason(group: dict, p: torch.Tensor) -> str | None:
    """Why the group's precision options cannot apply to parameter `p` (whatever the backend), or None."""
    if group.get("state_dtype") is not None and p.dtype == torch.float64:
        return "state_dtype applies to fp32, fp16 and bf16 parameters; an fp64 parameter keeps fp64 state"
    bf16_only = [name for name, on in (("kahan_summation=True", group.get("kahan_summation", False)),
                                       ("rounding='stochastic'", group.get("rounding", "nearest") == "stochastic"))
                 if on]
    if bf16_only and p.dtype == torch.float16:
        return (f"{bf16_only[0]} is for bf16 parameters; an fp16 parameter keeps its updates with "
                "master_weights=True")
    return None


def needs_native_backend(group: dict, p: torch.Tensor) -> bool:
    """True when the options change this parameter's storage from torch's: only a native kernel runs that."""
    if p.dtype not in (torch.float32, torch.float64, *SIXTEEN_BIT):  # complex: like fp32, its own master
        return group.get("state_dtype") is not None
    return not precision_of(group, p.dtype, p.numel()).is_torchs(p.dtype)
