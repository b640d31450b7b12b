"""What the device backends (cuda, triton, cuda-host) share: a partition's launch table in the kernel's memory, its
step counters there, and the per-step bookkeeping; each backend only supplies the launch.

Host work per step is O(1) in Python while the gradients keep their addresses: the native table gathers them
(csrc/bindings.cpp) and the launch table is rewritten and uploaded only when an address changed, from pinned memory
with an asynchronous copy on the current stream. The pinned buffer comes from torch's caching host allocator, which
keeps it from reuse until the copy has run: no host synchronization.

Every launch of a runner uses the same table, counters and done counter, so launches are ordered: a step on another
stream than the previous one first waits for it. Everything is done on the runner's device and its streams, never on
whichever device happens to be current."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .._native import native
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
    lr_tensor: torch.Tensor | None  # float32 0-dim on the device, read in the kernel instead (capturable, schedulers)
    beta1: float
    beta2: float
    beta1_tensor: torch.Tensor | None  # likewise for tensor betas
    beta2_tensor: torch.Tensor | None
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
        self._on_gpu = self._device.type == "cuda"
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
        self._stream: torch.cuda.Stream | None = None  # the stream of the last upload and launch
        self._num_chunks = 0
        self._aligned16 = False
        self.captured_grads: list[torch.Tensor] | None = None  # set once a launch was captured in a CUDA graph

    @property
    def captured(self) -> bool:
        """True once a launch of this runner was captured in a CUDA graph: replays use its table, counters and the
        gradients of that moment, so the optimizer keeps the runner alive after dropping it from a plan."""
        return self.captured_grads is not None

    def gather_grads(self) -> bool:
        return self._table.gather_grads()

    def set_grads(self, grads: Sequence[torch.Tensor]) -> None:
        self._table.set_grads(grads)

    def run(self, config: StepConfig, scaling: AmpScaling | None = None) -> None:
        capturing = self._order_after_last_launch()
        self._upload_table(capturing)
        if capturing and self.captured_grads is None:
            self.captured_grads = self._table.grads()  # replays read these addresses: keep them alive
        lr, lr_tensor = self._scalar(config.lr)
        beta1, beta1_tensor = self._scalar(config.beta1)
        beta2, beta2_tensor = self._scalar(config.beta2)
        if scaling is not None:
            scaling = scaling.on(self._device)
        self._launch(Launch(
            table=self._launch_table, num_tensors=self._num_tensors, num_chunks=self._num_chunks,
            aligned16=self._aligned16, chunk_size=self._chunk_size, steps=self._steps,
            done_counter=self._done_counter, dtype=self._dtype, state_dtype=self._precision.state_dtype,
            param_update=self._precision.update, rounding_seed=config.rounding_seed, lr=lr, lr_tensor=lr_tensor,
            beta1=beta1, beta2=beta2, beta1_tensor=beta1_tensor, beta2_tensor=beta2_tensor, eps=config.eps,
            weight_decay=config.weight_decay, weight_decay_mode=weight_decay_mode(config), amsgrad=config.amsgrad,
            maximize=config.maximize, grad_scale=scaling.grad_scale if scaling else None,
            found_inf=scaling.found_inf if scaling else None))

    def _scalar(self, value) -> tuple[float, torch.Tensor | None]:
        """A hyperparameter as the kernel takes it: a number, or a float32 0-dim tensor on this device that the kernel
        reads when it runs (so in-place updates take effect, CUDA graphs replay them, and reading it costs no host
        synchronization). A tensor of another dtype, shape or GPU is converted on the device, asynchronously."""
        if not isinstance(value, torch.Tensor):
            return float(value), None
        if value.device.type != self._device.type:
            return float(value), None  # a CPU tensor beside GPU parameters: reading it costs no GPU synchronization
        if value.device != self._device or value.dtype != torch.float32 or value.dim() != 0:
            value = value.detach().to(self._device, torch.float32).reshape(())
        return 0.0, value

    def _order_after_last_launch(self) -> bool:
        """Makes this step's stream wait for the previous launch when that ran on another stream (two launches sharing
        the done counter must not interleave, nor an upload overwrite the table under a running kernel). Returns
        whether the stream is capturing a CUDA graph (then the user orders streams, as torch.cuda.graph asks)."""
        if not self._on_gpu:
            return False
        stream = torch.cuda.current_stream(self._device)
        capturing = native().cuda_stream_is_capturing(self._device.index, stream.cuda_stream)
        if self._stream is not None and stream != self._stream and not capturing:
            stream.wait_stream(self._stream)
        self._stream = stream
        return capturing

    def _upload_table(self, capturing: bool) -> None:
        version = self._table.native.grad_version
        if version == self._uploaded_version:
            return
        words = self._launch_table.numel()
        if not self._on_gpu:  # a CPU "device" (the Triton interpreter, the host-played CUDA kernel): write in place
            self._num_chunks, self._aligned16 = self._table.native.write_launch_table(
                self._launch_table.data_ptr(), words, self._chunk_size)
        else:
            if capturing:
                raise RuntimeError("fusedadam: a gradient changed its address while a CUDA graph was being captured; "
                                   "run at least one step before capture (torch.cuda.graph's warm-up) and keep the "
                                   "gradients in place (zero_grad(set_to_none=False)) while the graph is in use")
            staging = torch.empty(words, dtype=torch.int64, pin_memory=True)
            self._num_chunks, self._aligned16 = self._table.native.write_launch_table(
                staging.data_ptr(), words, self._chunk_size)
            self._launch_table.copy_(staging, non_blocking=True)  # on the current stream of the table's device
        self._uploaded_version = version
