"""What the device backends (cuda, triton) share: a partition's launch table in device memory, its step
counters on the device, and the per-step bookkeeping; each backend only supplies the launch.

Host work per step is O(1) in Python while the gradients keep their addresses: the native table gathers
them (csrc/bindings.cpp) and the launch table is rewritten and uploaded only when an address changed,
from pinned memory with an asynchronous copy on the current stream. The pinned buffer comes from torch's
caching host allocator, which keeps it from reuse until the copy has run: no host synchronization."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .amp import AmpScaling
from .base import StateLayout, StateOf, StepConfig
from .cpu import weight_decay_mode
from .native_table import PartitionTable, gather_steps


@dataclass(frozen=True)
class Launch:
    """Everything a device kernel needs for one step, as plain values and tensors."""

    table: torch.Tensor        # int64, csrc/launch_table.h layout, on the device
    num_tensors: int
    num_chunks: int
    aligned16: bool            # every address in the table is 16-byte aligned
    chunk_size: int
    steps: torch.Tensor        # float32 [num_tensors] on the device; state["step"] are views of it
    done_counter: torch.Tensor  # int32 [1] on the device, zero between launches
    dtype: torch.dtype          # of the parameters and gradients
    state_dtype: torch.dtype    # of the moments
    param_update: str           # precision.PARAM_UPDATE_CODES
    rounding_seed: int
    lr: float
    lr_tensor: torch.Tensor | None  # float32 0-dim on the device, read in the kernel (capturable, schedulers)
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    weight_decay_mode: int
    amsgrad: bool
    maximize: bool
    grad_scale: torch.Tensor | None
    found_inf: torch.Tensor | None


class DeviceRunner:
    """One kernel launch per step for a partition on one device; `launch` is the backend's kernel call."""

    def __init__(self, params: Sequence[torch.Tensor], state_of: StateOf, layout: StateLayout,
                 launch: Callable[[Launch], None], chunk_size: int):
        self._launch = launch
        self._chunk_size = chunk_size
        self._num_tensors = len(params)
        self._device = params[0].device
        self._dtype = params[0].dtype
        states = [state_of(p) for p in params]
        # The counters live on the device (where torch's fused and capturable Adam keep them): the kernel
        # advances them, and a GradScaler skip needs no host round trip.
        self._steps = gather_steps(states, self._device)
        self._table = PartitionTable(params, states, layout, self._steps)
        self._precision = layout.precision
        self._done_counter = torch.zeros(1, dtype=torch.int32, device=self._device)
        words = self._table.native.launch_table_words(chunk_size)
        self._launch_table = torch.empty(words, dtype=torch.int64, device=self._device)
        self._uploaded_version: int | None = None
        self._upload: tuple[torch.cuda.Stream, torch.cuda.Event] | None = None  # the last copy's stream, event
        self._num_chunks = 0
        self._aligned16 = False

    def gather_grads(self) -> bool:
        return self._table.gather_grads()

    def set_grads(self, grads: Sequence[torch.Tensor]) -> None:
        self._table.set_grads(grads)

    def run(self, config: StepConfig, scaling: AmpScaling | None = None) -> None:
        self._upload_table()
        lr, lr_tensor = config.lr, None
        if isinstance(lr, torch.Tensor):
            if lr.device == self._device and lr.dtype == torch.float32 and lr.dim() == 0:
                lr_tensor = lr
            lr = 0.0 if lr_tensor is not None else float(lr)
        if scaling is not None:
            scaling = scaling.on(self._device)
        self._launch(Launch(
            table=self._launch_table, num_tensors=self._num_tensors, num_chunks=self._num_chunks,
            aligned16=self._aligned16, chunk_size=self._chunk_size, steps=self._steps,
            done_counter=self._done_counter, dtype=self._dtype, state_dtype=self._precision.state_dtype,
            param_update=self._precision.update, rounding_seed=config.rounding_seed, lr=float(lr), lr_tensor=lr_tensor,
            beta1=float(config.beta1), beta2=float(config.beta2), eps=config.eps, weight_decay=config.weight_decay,
            weight_decay_mode=weight_decay_mode(config), amsgrad=config.amsgrad, maximize=config.maximize,
            grad_scale=scaling.grad_scale if scaling else None, found_inf=scaling.found_inf if scaling else None))

    def _upload_table(self) -> None:
        version = self._table.native.grad_version
        if version == self._uploaded_version:
            if self._upload is not None and not torch.cuda.is_current_stream_capturing():
                stream, copied = self._upload
                current = torch.cuda.current_stream(self._device)
                if current != stream:  # a step on another stream than the copy's waits for it
                    current.wait_event(copied)
            return
        words = self._launch_table.numel()
        if self._device.type != "cuda":  # a CPU "device" (the Triton interpreter): write in place
            self._num_chunks, self._aligned16 = self._table.native.write_launch_table(
                self._launch_table.data_ptr(), words, self._chunk_size)
        else:
            if torch.cuda.is_current_stream_capturing():
                raise RuntimeError("fusedadam: a gradient changed its address while a CUDA graph was being captured; "
                                   "run at least one step before capture (torch.cuda.graph's warm-up) and keep the "
                                   "gradients in place (zero_grad(set_to_none=False)) while the graph is in use")
            staging = torch.empty(words, dtype=torch.int64, pin_memory=True)
            self._num_chunks, self._aligned16 = self._table.native.write_launch_table(
                staging.data_ptr(), words, self._chunk_size)
            self._launch_table.copy_(staging, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record()
            self._upload = (torch.cuda.current_stream(self._device), copied)
        self._uploaded_version = version
