"""FusedAdam and FusedAdamW: torch.optim.Adam / AdamW's interface and state, stepped by a native backend.

This layer checks, keeps state and dispatches; it computes nothing. Per step and per param group it
does O(1) Python work while the plan of the group still fits: the native table gathers the gradients
and runs every tensor of a (device, dtype) partition in one call.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Callable, Iterable

import torch

from .backends import Runner, StateLayout, StepConfig, local_shard, make_runner, native_refusal, resolve
from .backends.amp import AmpScaling
from .precision import (ABSMAX_KEYS, COMPENSATION_KEY, MASTER_KEY, MOMENT_KEYS, MOMENT_MAPS, PRECISION_DEFAULTS,
                        Precision, precision_of)
from .profiling import profiler_range
from .sharded_absmax import absmax_shape, dequantize_moment_of, quantize_moment_of, zero_absmax
from .state_table import StateTable
from .validation import (check_constructor_arguments, check_grad, check_hyperparameters, check_param,
                         check_precision_applies, check_state)

_ADAM_GROUP_DEFAULTS = dict(amsgrad=False, maximize=False, foreach=None, capturable=False, differentiable=False,
                            fused=None, decoupled_weight_decay=False, backend="auto", **PRECISION_DEFAULTS,
                            rounding_seed=0)
_STATE_TENSORS = (*MOMENT_KEYS, *ABSMAX_KEYS.values(), MASTER_KEY, COMPENSATION_KEY)
_PRECISION_OPTIONS = (*PRECISION_DEFAULTS, "rounding_seed")


@dataclass
class _Partition:
    """Parameters of one group that share a backend, device and dtype, with this step's gradients."""

    backend: str
    sharded: bool  # DTensor parameters, stepped on their local shards
    precision: Precision
    params: list[torch.Tensor] = field(default_factory=list)
    grads: list[torch.Tensor] = field(default_factory=list)


@dataclass
class _GroupPlan:
    """What a param group's step runs, cached while the group's parameters and gradients keep their shape."""

    params_list: list  # the group's own list object: replacing group["params"] invalidates the plan
    num_params: int
    storage: tuple  # amsgrad and the precision options: what the state holds
    runners: list[Runner]
    without_grad: list[torch.Tensor]
    # What the plan was validated with: per parameter, its state dict and that dict's tensors at build time.
    state_refs: list[tuple[torch.Tensor, dict, tuple]] = field(default_factory=list)

    def fits(self, group: dict) -> bool:
        return (group["params"] is self.params_list and len(self.params_list) == self.num_params
                and _storage_options(group) == self.storage)

    @property
    def captured(self) -> bool:
        """True when a launch of this plan was captured in a CUDA graph (device backends only)."""
        return any(getattr(runner, "captured", False) for runner in self.runners)

    def states_unchanged(self, state: dict) -> bool:
        """True when every parameter's state dict, and every tensor in it, is the object the plan was built from."""
        return all(state.get(p) is entry and all(entry.get(key) is value for key, value in tensors)
                   for p, entry, tensors in self.state_refs)

    def gather_grads(self) -> bool:
        # A parameter that gained a gradient changes the plan as much as one that lost it.
        return (all(p.grad is None for p in self.without_grad)
                and all(runner.gather_grads() for runner in self.runners))

    def run(self, config: StepConfig, scaling: AmpScaling | None) -> None:
        for runner in self.runners:
            runner.run(config, scaling)


class FusedAdam(torch.optim.Optimizer):
    """Adam (Kingma & Ba, 2015), a drop-in replacement for torch.optim.Adam.

    Same arguments, defaults, results and state_dict as torch.optim.Adam, plus
    backend: "auto" (default) | "cpu" | "cuda" | "triton" | "torch". "auto" picks, for every
        (device, dtype) of a group, the fastest backend that can run it and falls back to "torch" (torch's
        own implementation) for the rest; a named backend that cannot run a parameter is an error.
        `optimizer.backends` shows the choice.
    foreach, fused: only passed on to torch's implementation when the "torch" backend steps a group; the
        native backends are always fused, multi-tensor kernels.
    differentiable=True is not supported (a clear error): the kernels work outside autograd.
    GradScaler: the step unscales the gradients and skips on inf/NaN itself (torch.amp.GradScaler's
        `_step_supports_amp_scaling` contract), inside the kernel on the device backends.
    Low-memory and mixed-precision options (fusedadam.precision; the defaults are torch's behaviour):
    master_weights: fp32 master copies of 16-bit parameters, in the state ("master_param").
    state_dtype: None (torch's choice), torch.float32 or torch.bfloat16 for exp_avg / exp_avg_sq.
    rounding: "nearest" | "stochastic" (bf16 parameters without master weights).
    kahan_summation: a bf16 compensation buffer for bf16 parameters without master weights.
    rounding_seed: the seed of stochastic rounding (default: torch.initial_seed()).
    """

    _step_supports_amp_scaling = True

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, torch.Tensor]],
                 lr: float | torch.Tensor = 1e-3,
                 betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
                 eps: float = 1e-8,
                 weight_decay: float = 0,
                 amsgrad: bool = False,
                 *,
                 foreach: bool | None = None,
                 maximize: bool = False,
                 capturable: bool = False,
                 differentiable: bool = False,
                 fused: bool | None = None,
                 decoupled_weight_decay: bool = False,
                 backend: str = "auto",
                 master_weights: bool = False,
                 state_dtype: torch.dtype | None = None,
                 rounding: str = "nearest",
                 kahan_summation: bool = False,
                 rounding_seed: int | None = None):
        if rounding_seed is None:
            rounding_seed = torch.initial_seed() % 2**64  # reproducible under torch.manual_seed; draws nothing
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay, backend=backend,
                        master_weights=master_weights, state_dtype=state_dtype, rounding=rounding,
                        kahan_summation=kahan_summation, rounding_seed=rounding_seed)
        check_constructor_arguments(lr, betas, eps, weight_decay, foreach, capturable, differentiable, fused)
        check_hyperparameters(defaults)
        self._plans: dict[int, _GroupPlan] = {}
        self._configs: dict[int, tuple] = {}
        self._captured_plans: list[_GroupPlan] = []
        super().__init__(params, defaults)
        self.state = StateTable(self.state)
        self._state_generation = -1  # self.state.generation when the plans were last checked against it

    def _patch_step_function(self) -> None:
        self._zero_grad_profile_name = f"Optimizer.zero_grad#{self.__class__.__name__}.zero_grad"
        step = self.__class__.step
        if not getattr(step, "hooked", None):
            self.__class__.step = _with_step_hooks(step)
            self.__class__.step.hooked = True

    # ----------------------------------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, torch.Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)  # a generator is consumed once, here
        param_group = {**param_group, "params": params}
        filled = {**self.defaults, **param_group}
        index = len(self.param_groups)
        check_hyperparameters(filled, where=f" (param group {index})")
        for i, entry in enumerate(params):
            p = entry[1] if isinstance(entry, tuple) else entry
            where = f"parameter {i} of param group {index}"
            check_param(p, where)
            precision = precision_of(filled, p.dtype, p.numel())
            backend = _backend_of(filled, p, where, precision)
            check_precision_applies(filled, p, precision, backend, lambda: native_refusal(p), where)
        super().add_param_group(param_group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.state = StateTable(self.state)
        self._state_generation = -1
        for group in self.param_groups:
            for key, value in _ADAM_GROUP_DEFAULTS.items():
                group.setdefault(key, value)
        self._captured_plans = getattr(self, "_captured_plans", [])
        self._retire_plans(list(getattr(self, "_plans", {})), "the optimizer's state was replaced")
        self._configs = {}

    def _retire_plans(self, indices, why: str) -> None:
        """Drops the plans of these groups. A plan whose step was captured in a CUDA graph stays alive with the
        optimizer: replays of that graph launch on its launch table, counters and gradients, which must not be
        freed under them (the graph keeps stepping those tensors, not the optimizer's current state)."""
        plans = getattr(self, "_plans", {})
        for index in list(indices):
            plan = plans.pop(index, None)
            if plan is not None and plan.captured:
                self._captured_plans.append(plan)
                warnings.warn(f"fusedadam: the step of param group {index} was captured in a CUDA graph, and its plan "
                              f"is rebuilt now ({why}); replays of that graph keep stepping the tensors it captured, "
                              "which stay allocated, not this optimizer's current state: capture the step again",
                              stacklevel=3)
        self._plans = plans

    def state_dict(self) -> dict[str, Any]:
        """torch's state_dict, with each parameter's state as a plain dict (holding the same tensors): the optimizer's
        own dicts count their changes (state_table.py), and torch.load(weights_only=True) takes plain dicts only."""
        state_dict = super().state_dict()
        state_dict["state"] = {key: dict(value) for key, value in state_dict["state"].items()}
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's load_state_dict, except that (1) torch casts every floating-point state tensor to its parameter's
        dtype, which would round an fp32 master copy or fp32 moments of a bf16 parameter, so those are set aside
        and restored as saved (the next step converts them if this optimizer's options differ); (2) a saved group
        without the precision options (a torch.optim.Adam checkpoint) keeps this optimizer's; (3) every group keeps
        this optimizer's `backend`: where a step runs belongs to this process's devices, not to the checkpoint (a
        GPU run's checkpoint, backend="cuda", loads into a CPU optimizer and steps there)."""
        _check_loadable(self, state_dict)
        configured = [{k: group[k] for k in _PRECISION_OPTIONS} for group in self.param_groups]
        own_backends = [group["backend"] for group in self.param_groups]
        saved_ids = list(chain.from_iterable(g["params"] for g in state_dict["param_groups"]))
        set_aside = {pid: {k: v for k, v in state_dict["state"][pid].items()
                           if k in _STATE_TENSORS and isinstance(v, torch.Tensor)}
                     for pid in saved_ids if pid in state_dict["state"]}
        rest = {pid: {k: v for k, v in entry.items() if k not in set_aside.get(pid, {})}
                for pid, entry in state_dict["state"].items()}
        super().load_state_dict({**state_dict, "state": rest})  # ends in __setstate__: every plan is dropped
        params = chain.from_iterable(g["params"] for g in self.param_groups)
        for saved_id, p in zip(saved_ids, params):
            for key, value in set_aside.get(saved_id, {}).items():
                self.state[p][key] = value.to(device=p.device, copy=True)
            step = self.state[p].get("step")
            if isinstance(step, torch.Tensor):
                # torch's loader keeps a CPU "step" by reference: two optimizers loading one state_dict would share
                # (and both advance) the counter, and so would the optimizer that saved it.
                self.state[p]["step"] = step.clone()
        for group, saved, options, backend in zip(self.param_groups, state_dict["param_groups"], configured,
                                                  own_backends):
            for key, value in options.items():
                if key not in saved:
                    group[key] = value
            group["backend"] = backend

    @property
    def backends(self) -> list[dict[tuple[str, torch.dtype], str]]:
        """For every param group, which backend steps each (device, dtype) of it ("cpu+torch" when mixed)."""
        result = []
        for index, group in enumerate(self.param_groups):
            chosen: dict[tuple[str, torch.dtype], set[str]] = {}
            for i, p in enumerate(group["params"]):
                name = _backend_of(group, p, f"parameter {i} of param group {index}",
                                   precision_of(group, p.dtype, p.numel()))
                chosen.setdefault((str(p.device), p.dtype), set()).add(name)
            result.append({key: "+".join(sorted(names)) for key, names in chosen.items()})
        return result

    # ------------------------------------------------------------------------------------------- step
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        """Performs a single optimization step; returns the closure's loss when a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if torch.compiler.is_compiling():
            self._step_in_graph()
            return loss
        self._step_eagerly()
        return loss

    def _step_eagerly(self) -> None:
        # 1. Check everything; no state is created or changed until every group has passed. A plan is reused while
        #    its group, its parameters' storage, their gradients and their state are what it was built from: the
        #    state is re-checked only when the state table counted a change (state_table.py).
        if type(self.state) is not StateTable:  # the whole table was replaced: opt.state = ...
            self.state = StateTable(self.state)
        state_moved = self.state.generation != self._state_generation
        configs, rebuilds = [], []
        for index, group in enumerate(self.param_groups):
            configs.append(_step_config(group, index, self._configs))
            plan = self._plans.get(index)
            if (plan is None or not plan.fits(group) or (state_moved and not plan.states_unchanged(self.state))
                    or not plan.gather_grads()):
                rebuilds.append((index, group, self._partition(index, group)))
        # 2. Create missing state and rebuild the plans whose parameters, gradients or state changed.
        salts = _salts(self.param_groups) if rebuilds else {}
        for index, group, partitions in rebuilds:
            self._retire_plans([index], "its parameters, gradients or state changed")
            self._plans[index] = self._build_plan(group, partitions, salts)
        self._state_generation = self.state.generation
        # 3. Run.
        scaling = AmpScaling.of(self)
        for index, config in enumerate(configs):
            self._plans[index].run(config, scaling)

    def _step_in_graph(self) -> None:
        """The step as torch.compile traces it: no cached native tables (dynamo cannot trace them), one
        `fusedadam::adam_step_` custom op per partition instead (custom_op.py). What changes every step does
        not recompile: the counters are tensors, and dynamo makes a float lr that changes dynamic (a tensor lr
        is also fine). DTensor partitions go to the torch backend here."""
        from .custom_op import adam_step_

        scaling = AmpScaling.of(self)
        grad_scale, found_inf = (scaling.grad_scale, scaling.found_inf) if scaling else (None, None)
        partitions = [(group, self._partition(index, group)) for index, group in enumerate(self.param_groups)]
        salts = _salts(self.param_groups)
        for group, parts in partitions:
            lr = group["lr"] if isinstance(group["lr"], torch.Tensor) else torch.tensor(group["lr"])
            beta1, beta2 = group["betas"]
            seed = group["rounding_seed"]
            for part in parts:
                for p in part.params:
                    self._init_state(p, group, part.precision)
                states = [self.state[p] for p in part.params]
                precision = part.precision
                if part.sharded and not precision.is_torchs(part.params[0].dtype):
                    raise NotImplementedError("fusedadam: under torch.compile, DTensor parameters are stepped by the "
                                              "torch backend, which has no low-precision modes; step them eagerly")

                def listed(key, wanted):
                    return [s[key] for s in states] if wanted else []

                absmaxes = [listed(ABSMAX_KEYS[key], precision.quantized and key in precision.moment_keys(
                    group["amsgrad"])) for key in MOMENT_KEYS]
                adam_step_(part.params, part.grads, listed("exp_avg", True), listed("exp_avg_sq", True),
                           listed("max_exp_avg_sq", group["amsgrad"]), listed(MASTER_KEY, precision.master),
                           listed(COMPENSATION_KEY, precision.compensation), *absmaxes, listed("step", True), lr,
                           float(beta1), float(beta2), float(group["eps"]), float(group["weight_decay"]), group["amsgrad"],
                           group["maximize"], group["decoupled_weight_decay"],
                           "torch" if part.sharded else part.backend, precision.update,
                           seed - 2**64 if seed >= 2**63 else seed, [salts[id(p)] for p in part.params],
                           grad_scale, found_inf)
        self._plans.clear()  # eager steps after compiled ones rebuild their tables from the state as it now is

    def _partition(self, index: int, group: dict) -> list[_Partition]:
        partitions: dict[tuple, _Partition] = {}
        names = group.get("param_names")
        for i, p in enumerate(group["params"]):
            grad = p.grad
            if grad is None:
                continue
            where = f"parameter {i}{f' ({names[i]!r})' if names else ''} of param group {index}"
            check_grad(p, grad, where)
            check_state(p, self.state.get(p), group, where)
            # One group may hold 8-bit moments and, for its small tensors, fp32 ones: one table each.
            precision = precision_of(group, p.dtype, p.numel())
            backend = _backend_of(group, p, where, precision)
            check_precision_applies(group, p, precision, backend, lambda: native_refusal(p), where)
            sharded = backend != "torch" and local_shard(p) is not None
            part = partitions.setdefault((backend, sharded, p.device, p.dtype, precision),
                                         _Partition(backend, sharded, precision))
            part.params.append(p)
            part.grads.append(grad)
        return list(partitions.values())

    def _build_plan(self, group: dict, partitions: list[_Partition], salts: dict[int, int]) -> _GroupPlan:
        runners = []
        for part in partitions:
            for p in part.params:
                self._init_state(p, group, part.precision)
            layout = StateLayout(amsgrad=group["amsgrad"], precision=part.precision,
                                 salts=tuple(salts[id(p)] for p in part.params))
            runner = make_runner(part.backend, part.params, self.state.__getitem__, layout, part.sharded)
            runner.set_grads(part.grads)
            runners.append(runner)
        # Every backend's: the torch backend reads the state afresh each step, but a replaced state tensor must be
        # validated against its parameter before torch's kernels (which trust the shapes) see it.
        state_refs = [(p, self.state[p], tuple((k, v) for k, v in self.state[p].items() if isinstance(v, torch.Tensor)))
                      for part in partitions for p in part.params]
        return _GroupPlan(params_list=group["params"], num_params=len(group["params"]), storage=_storage_options(group),
                          runners=runners, without_grad=[p for p in group["params"] if p.grad is None],
                          state_refs=state_refs)

    def _init_state(self, p: torch.Tensor, group: dict, precision: Precision) -> None:
        """torch.optim.Adam's lazy state, created at a parameter's first step with a gradient, stored as
        `precision` (the group's options for this parameter) says. State that exists in another storage (a
        checkpoint, options changed between steps) is converted: moments cast, a master copy made from the
        parameter, a compensation buffer started at zero, whatever the options no longer ask for dropped."""
        state = self.state[p]
        if len(state) == 0:
            # torch's rule (torch.optim.optimizer._get_scalar_dtype): float64 under torch.set_default_dtype(
            # torch.float64), except for the fused kernels; on the parameter's device with capturable or fused. (The
            # device backends step their own float32 copy, as torch's fused kernels do.)
            on_device = group["capturable"] or group["fused"]
            wide = torch.get_default_dtype() == torch.float64 and not (on_device and group["fused"])
            state["step"] = torch.zeros((), dtype=torch.float64 if wide else torch.float32,
                                        device=p.device if on_device else torch.device("cpu"))
        wanted = precision.state_keys(group["amsgrad"])
        for key in precision.moment_keys(group["amsgrad"]):
            _store_moment(state, key, p, precision)
        for key in wanted:
            value = state.get(key)
            if value is None and key == MASTER_KEY:
                state[key] = torch.empty_like(p, dtype=torch.float32).copy_(p.detach())
            elif value is None:
                state[key] = torch.zeros_like(p, dtype=precision.dtype_of(key), memory_format=torch.preserve_format)
        for key in (MASTER_KEY, COMPENSATION_KEY, *ABSMAX_KEYS.values()):
            if key not in wanted:
                state.pop(key, None)


def _store_moment(state: dict, key: str, p: torch.Tensor, precision: Precision) -> None:
    """Puts moment `key` into the storage `precision` asks for: zeros when it is missing, else its values converted
    (cast, quantized, or decoded from 8-bit codes with their absmax; check_state made sure those exist). 8-bit codes
    lie in the parameter's memory order, their absmax fp32 and contiguous, which is what the CPU kernel reads."""
    value, absmax_key = state.get(key), ABSMAX_KEYS[key]
    fmap = MOMENT_MAPS[key]
    if value is not None and value.dtype == torch.uint8:
        if precision.quantized and value.stride() == p.stride():
            state[absmax_key] = state[absmax_key].to(torch.float32).contiguous()
            return
        value = dequantize_moment_of(value, state[absmax_key], fmap)  # another layout or another storage
    if not precision.quantized:
        if value is None:
            value = torch.zeros_like(p, dtype=precision.state_dtype, memory_format=torch.preserve_format)
        elif value.dtype != precision.state_dtype:  # the layout is the native table's to match (match_layout)
            value = torch.empty_like(p, dtype=precision.state_dtype).copy_(value)
        state[key] = value
        return
    if value is None:
        state[key] = torch.zeros_like(p, dtype=torch.uint8, memory_format=torch.preserve_format)
        state[absmax_key] = zero_absmax(p)
        return
    state[key], state[absmax_key] = quantize_moment_of(p, torch.empty_like(p, dtype=torch.float32).copy_(value), fmap)


class FusedAdamW(FusedAdam):
    """AdamW (Loshchilov & Hutter, 2019): FusedAdam with decoupled weight decay, default 1e-2; a drop-in
    replacement for torch.optim.AdamW."""

    def __init__(self, params, lr: float | torch.Tensor = 1e-3,
                 betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None, backend: str = "auto",
                 master_weights: bool = False, state_dtype: torch.dtype | None = None, rounding: str = "nearest",
                 kahan_summation: bool = False, rounding_seed: int | None = None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         foreach=foreach, maximize=maximize, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True, backend=backend, master_weights=master_weights,
                         state_dtype=state_dtype, rounding=rounding, kahan_summation=kahan_summation,
                         rounding_seed=rounding_seed)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.state = StateTable(self.state)
        self._state_generation = -1
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True  # as torch.optim.AdamW: any loaded state stays AdamW


_CONFIG_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay", "foreach",
                "fused", "capturable", "differentiable", "backend", *_PRECISION_OPTIONS)


def _backend_of(group: dict, p: torch.Tensor, where: str, precision: Precision) -> str:
    """The backend that steps `p` in `group` with its `precision` (auto picks one whose kernel runs that storage)."""
    return resolve(group["backend"], p, where, eight_bit=precision.quantized)


def _storage_options(group: dict) -> tuple:
    return (group["amsgrad"], *(group[k] for k in PRECISION_DEFAULTS))


def _salts(param_groups: list[dict]) -> dict[int, int]:
    """Each parameter's index in the optimizer (its state_dict id): the salt of its rounding bits."""
    params = chain.from_iterable(g["params"] for g in param_groups)
    return {id(p): index for index, p in enumerate(params)}


def _step_config(group: dict, index: int, cache: dict[int, tuple]) -> StepConfig:
    """The group's settings for this step. Groups can be edited between steps (schedulers, users), so they are
    checked again whenever a value changed; unchanged groups cost one tuple comparison. A tensor lr is kept
    as the tensor and read at run time, so in-place updates (lr.fill_) take effect."""
    key = tuple([group[k] for k in _CONFIG_KEYS])
    cached = cache.get(index)
    if cached is not None and cached[0] == key:
        return cached[1]
    check_hyperparameters(group, where=f" (param group {index})")
    beta1, beta2 = group["betas"]
    config = StepConfig(lr=group["lr"], beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                        weight_decay=float(group["weight_decay"]), amsgrad=group["amsgrad"],
                        maximize=group["maximize"], decoupled_weight_decay=group["decoupled_weight_decay"],
                        foreach=group["foreach"], fused=group["fused"], capturable=group["capturable"],
                        rounding_seed=group["rounding_seed"])
    cache[index] = (key, config)
    return config


def _with_step_hooks(step: Callable) -> Callable:
    """torch.optim.Optimizer's step wrapper (step pre/post hooks, global hooks, the profiler's
    "Optimizer.step#<class>.step" range), except that the range is opened only while a profiler records:
    opening it costs ~10 us per step, a large part of a small step's host time."""
    from torch.optim import optimizer as torch_optimizer

    @functools.wraps(step)
    def wrapper(*args, **kwargs):
        self = args[0]
        with profiler_range(f"Optimizer.step#{self.__class__.__name__}.step"):
            return _hooked_call(torch_optimizer, step, self, args, kwargs)

    return wrapper


def _hooked_call(torch_optimizer, step: Callable, self, args, kwargs):
    for pre_hook in chain(torch_optimizer._global_optimizer_pre_hooks.values(),
                          self._optimizer_step_pre_hooks.values()):
        result = pre_hook(self, args, kwargs)
        if result is not None:
            if isinstance(result, tuple) and len(result) == 2:
                args, kwargs = result
            else:
                raise RuntimeError(f"{step} must return None or a tuple of (new_args, new_kwargs), but got {result}.")
    out = step(*args, **kwargs)
    self._optimizer_step_code()
    for post_hook in chain(self._optimizer_step_post_hooks.values(),
                           torch_optimizer._global_optimizer_post_hooks.values()):
        post_hook(self, args, kwargs)
    return out


def _check_loadable(optimizer: FusedAdam, state_dict: dict[str, Any]) -> None:
    """Refuses a state_dict that would break the optimizer, before anything is replaced: torch checks group
    counts and sizes; this also checks each state tensor's shape against its parameter."""
    if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
        raise ValueError("state_dict must be a dict with 'state' and 'param_groups', as returned by state_dict()")
    saved_groups = state_dict["param_groups"]
    if len(saved_groups) != len(optimizer.param_groups):
        raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, this optimizer has "
                         f"{len(optimizer.param_groups)}")
    for index, (group, saved) in enumerate(zip(optimizer.param_groups, saved_groups)):
        if len(group["params"]) != len(saved["params"]):
            raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size of "
                             f"optimizer's group: group {index} has {len(saved['params'])} parameters there and "
                             f"{len(group['params'])} here")
        for p, saved_id in zip(group["params"], saved["params"]):
            entry = state_dict["state"].get(saved_id, {})
            for key in _STATE_TENSORS:
                value = entry.get(key)
                expected = absmax_shape(p) if key in ABSMAX_KEYS.values() else p.shape
                if isinstance(value, torch.Tensor) and value.shape != expected:
                    raise ValueError(f"loaded state dict has {key} of shape {tuple(value.shape)} for parameter "
                                     f"{saved_id} (group {index}), where {tuple(expected)} was expected (the "
                                     f"parameter's shape here is {tuple(p.shape)}); it belongs to a different model")
