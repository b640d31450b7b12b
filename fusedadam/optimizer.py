"""FusedAdam and FusedAdamW: torch.optim.Adam / AdamW's interface and state, stepped by a native backend.

This layer checks, keeps state and dispatches; it computes nothing. Per step and per param group it
does O(1) Python work while the plan of the group still fits: the native table gathers the gradients
and runs every tensor of a (device, dtype) partition in one call.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Callable, Iterable

import torch

from .backends import Runner, StepConfig, local_shard, make_runner, resolve
from .backends.amp import AmpScaling
from .profiling import profiler_range
from .validation import check_grad, check_hyperparameters, check_param

_ADAM_GROUP_DEFAULTS = dict(amsgrad=False, maximize=False, foreach=None, capturable=False, differentiable=False,
                            fused=None, decoupled_weight_decay=False, backend="auto")
_STATE_TENSORS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


@dataclass
class _Partition:
    """Parameters of one group that share a backend, device and dtype, with this step's gradients."""

    backend: str
    sharded: bool  # DTensor parameters, stepped on their local shards
    params: list[torch.Tensor] = field(default_factory=list)
    grads: list[torch.Tensor] = field(default_factory=list)


@dataclass
class _GroupPlan:
    """What a param group's step runs, cached while the group's parameters and gradients keep their shape."""

    params_list: list  # the group's own list object: replacing group["params"] invalidates the plan
    num_params: int
    amsgrad: bool
    runners: list[Runner]
    without_grad: list[torch.Tensor]

    def fits(self, group: dict) -> bool:
        return (group["params"] is self.params_list and len(self.params_list) == self.num_params
                and group["amsgrad"] == self.amsgrad)

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
                 backend: str = "auto"):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay, backend=backend)
        check_hyperparameters(defaults)
        self._plans: dict[int, _GroupPlan] = {}
        self._configs: dict[int, tuple] = {}
        super().__init__(params, defaults)

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
            resolve(filled["backend"], p, where)
        super().add_param_group(param_group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in _ADAM_GROUP_DEFAULTS.items():
                group.setdefault(key, value)
        self._plans = {}
        self._configs = {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _check_loadable(self, state_dict)
        super().load_state_dict(state_dict)  # ends in __setstate__, which drops every cached plan

    @property
    def backends(self) -> list[dict[tuple[str, torch.dtype], str]]:
        """For every param group, which backend steps each (device, dtype) of it ("cpu+torch" when mixed)."""
        result = []
        for index, group in enumerate(self.param_groups):
            chosen: dict[tuple[str, torch.dtype], set[str]] = {}
            for i, p in enumerate(group["params"]):
                name = resolve(group["backend"], p, f"parameter {i} of param group {index}")
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

        # 1. Check everything; no state is created or changed until every group has passed.
        configs, rebuilds = [], []
        for index, group in enumerate(self.param_groups):
            configs.append(_step_config(group, index, self._configs))
            plan = self._plans.get(index)
            if plan is None or not plan.fits(group) or not plan.gather_grads():
                rebuilds.append((index, group, self._partition(index, group)))
        # 2. Create missing state and rebuild the plans whose parameters or gradients changed.
        for index, group, partitions in rebuilds:
            self._plans[index] = self._build_plan(group, partitions)
        # 3. Run.
        scaling = AmpScaling.of(self)
        for index, config in enumerate(configs):
            self._plans[index].run(config, scaling)
        return loss

    def _step_in_graph(self) -> None:
        """The step as torch.compile traces it: no cached native tables (dynamo cannot trace them), one
        `fusedadam::adam_step_` custom op per partition instead (custom_op.py). What changes every step does
        not recompile: the counters are tensors, and dynamo makes a float lr that changes dynamic (a tensor lr
        is also fine). DTensor partitions go to the torch backend here."""
        from .custom_op import adam_step_

        scaling = AmpScaling.of(self)
        grad_scale, found_inf = (scaling.grad_scale, scaling.found_inf) if scaling else (None, None)
        partitions = [(group, self._partition(index, group)) for index, group in enumerate(self.param_groups)]
        for group, parts in partitions:
            lr = group["lr"] if isinstance(group["lr"], torch.Tensor) else torch.tensor(group["lr"])
            beta1, beta2 = group["betas"]
            for part in parts:
                for p in part.params:
                    self._init_state(p, group)
                states = [self.state[p] for p in part.params]
                adam_step_(part.params, part.grads, [s["exp_avg"] for s in states],
                           [s["exp_avg_sq"] for s in states],
                           [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
                           [s["step"] for s in states], lr, float(beta1), float(beta2), float(group["eps"]),
                           float(group["weight_decay"]), group["amsgrad"], group["maximize"],
                           group["decoupled_weight_decay"], "torch" if part.sharded else part.backend,
                           grad_scale, found_inf)
        self._plans = {}  # eager steps after compiled ones rebuild their tables from the state as it now is

    def _partition(self, index: int, group: dict) -> list[_Partition]:
        partitions: dict[tuple, _Partition] = {}
        names = group.get("param_names")
        for i, p in enumerate(group["params"]):
            grad = p.grad
            if grad is None:
                continue
            where = f"parameter {i}{f' ({names[i]!r})' if names else ''} of param group {index}"
            check_grad(p, grad, where)
            backend = resolve(group["backend"], p, where)
            sharded = backend != "torch" and local_shard(p) is not None
            part = partitions.setdefault((backend, sharded, p.device, p.dtype), _Partition(backend, sharded))
            part.params.append(p)
            part.grads.append(grad)
        return list(partitions.values())

    def _build_plan(self, group: dict, partitions: list[_Partition]) -> _GroupPlan:
        runners = []
        for part in partitions:
            for p in part.params:
                self._init_state(p, group)
            runner = make_runner(part.backend, part.params, self.state.__getitem__, group["amsgrad"], part.sharded)
            runner.set_grads(part.grads)
            runners.append(runner)
        return _GroupPlan(params_list=group["params"], num_params=len(group["params"]), amsgrad=group["amsgrad"],
                          runners=runners, without_grad=[p for p in group["params"] if p.grad is None])

    def _init_state(self, p: torch.Tensor, group: dict) -> None:
        """torch.optim.Adam's lazy state: created at a parameter's first step with a gradient."""
        state = self.state[p]
        if len(state) == 0:
            on_device = group["capturable"] or group["fused"]
            state["step"] = (torch.zeros((), dtype=torch.float32, device=p.device) if on_device
                             else torch.tensor(0.0, dtype=torch.float32))
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)


class FusedAdamW(FusedAdam):
    """AdamW (Loshchilov & Hutter, 2019): FusedAdam with decoupled weight decay, default 1e-2; a drop-in
    replacement for torch.optim.AdamW."""

    def __init__(self, params, lr: float | torch.Tensor = 1e-3,
                 betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None, backend: str = "auto"):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         foreach=foreach, maximize=maximize, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True, backend=backend)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True  # as torch.optim.AdamW: any loaded state stays AdamW


_CONFIG_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay", "foreach",
                "fused", "capturable", "differentiable", "backend")


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
                        foreach=group["foreach"], fused=group["fused"], capturable=group["capturable"])
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
                if isinstance(value, torch.Tensor) and value.shape != p.shape:
                    raise ValueError(f"loaded state dict has {key} of shape {tuple(value.shape)} for parameter "
                                     f"{saved_id} (group {index}), whose shape here is {tuple(p.shape)}; it belongs "
                                     "to a different model")
