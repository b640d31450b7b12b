"""Everything a user can do between steps, interleaved at random with steps, on FusedAdam and on a torch.optim.Adam
twin: after every step both raised (the same kind of error) or both stepped to the same numbers, and a refused step
changed nothing of ours. The changes: p.data swapped (same shape, another shape, another dtype), set_, p.grad and
p.grad.data replaced or resized, zero_grad both ways, state entries replaced or zeroed, a warm restart of "step",
a state reset, load_state_dict, add_param_group, model.to(dtype).

FusedAdam caches a native table of addresses between steps (DESIGN.md, "Cached tables are never the source of
truth"); this is the test that the cache never outlives what it describes. CI runs it with the AddressSanitizer build
too (.ci/run), where a stale address would be a report, not a silent wrong number."""
from __future__ import annotations

import os

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fusedadam import FusedAdam
from specs import BACKEND_SPECS

SHAPES = [(5,), (3, 4), (7,)]
EXAMPLES = int(os.environ.get("FUSEDADAM_STATE_MACHINE_EXAMPLES", "100"))
KEYS = ("exp_avg", "exp_avg_sq")


def _values(shape, dtype, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


class Twins(RuleBasedStateMachine):
    """Two optimizers over twin parameters: ours (self.ours / self.mine) and torch's (self.torch / self.theirs)."""

    backend = "cpu"

    def __init__(self):
        super().__init__()
        self.seed = 0

    def fresh(self, shape, dtype=torch.float32):
        self.seed += 1
        return _values(shape, dtype, self.seed)

    @initialize()
    def build(self):
        values = [self.fresh(s) for s in SHAPES]
        self.mine = [v.clone().requires_grad_() for v in values]
        self.theirs = [v.clone().requires_grad_() for v in values]
        kwargs = dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1)
        self.ours = FusedAdam(self.mine, backend=self.backend, **kwargs)
        self.torch = torch.optim.Adam(self.theirs, foreach=False, **kwargs)
        self.new_grads()

    # ------------------------------------------------------------------------------------------- both twins alike
    def both(self, change):
        """Applies `change` to each twin. Where torch refuses the change itself (p.grad = a tensor of another size), it
        refuses it for both."""
        errors = []
        for params, optimizer in ((self.mine, self.ours), (self.theirs, self.torch)):
            try:
                change(params, optimizer)
                errors.append(None)
            except RuntimeError as error:
                errors.append(error)
        assert (errors[0] is None) == (errors[1] is None), errors

    def pairs(self):
        return list(zip(self.mine, self.theirs))

    # ------------------------------------------------------------------------------------------------- gradients
    @rule()
    def new_grads(self):
        grads = [self.fresh(p.shape, p.dtype) for p in self.mine]
        self.both(lambda params, _: [setattr(p, "grad", g.clone()) for p, g in zip(params, grads)])

    @rule(i=st.integers(0, 2), other_shape=st.booleans())
    def replace_grad(self, i, other_shape):
        shape = (11,) if other_shape else self.mine[i].shape
        grad = self.fresh(shape, self.mine[i].dtype)
        self.both(lambda params, _: setattr(params[i], "grad", grad.clone()))

    @rule(i=st.integers(0, 2), other_shape=st.booleans())
    @precondition(lambda self: all(p.grad is not None for p in self.mine))
    def replace_grad_data(self, i, other_shape):
        shape = (4096,) if other_shape else self.mine[i].shape
        grad = self.fresh(shape, self.mine[i].dtype)
        self.both(lambda params, _: setattr(params[i].grad, "data", grad.clone()))

    @rule(i=st.integers(0, 2))
    def drop_grad(self, i):
        self.both(lambda params, _: setattr(params[i], "grad", None))

    @rule(set_to_none=st.booleans())
    def zero_grad(self, set_to_none):
        self.both(lambda _, optimizer: optimizer.zero_grad(set_to_none=set_to_none))

    # ------------------------------------------------------------------------------------------------ parameters
    @rule(i=st.integers(0, 2), kind=st.sampled_from(["same", "other-shape", "other-dtype"]))
    def swap_data(self, i, kind):
        dtype = self.mine[i].dtype
        if kind == "other-dtype":
            dtype = torch.float64 if dtype == torch.float32 else torch.float32
        values = self.fresh(self.mine[i].shape if kind != "other-shape" else (8,), dtype)

        def change(params, _):
            params[i].data = values.clone()
            if kind == "other-dtype" and params[i].grad is not None:
                # As model.to(dtype) does. (A gradient of another dtype than its parameter's can only come from
                # such a swap: torch 2.13 refuses p.grad = ... of another dtype; fusedadam refuses it at the step.)
                params[i].grad = None
        self.both(change)

    def convert_twin_state(self, p):
        """fusedadam converts a parameter's state to its dtype at the step (a change it honours); torch would fail on
        the mismatch, so before each step the twin's state is converted by hand and the numbers are compared."""
        state = self.torch.state.get(p)
        for key in KEYS:
            if state and key in state and state[key].shape == p.shape:
                state[key] = state[key].to(p.dtype)

    @rule(i=st.integers(0, 2), numel=st.sampled_from([4096, 2]))
    def set_storage(self, i, numel):
        values = self.fresh((numel,), self.mine[i].dtype)

        def change(params, _):
            with torch.no_grad():
                params[i].set_(values.clone())
        self.both(change)

    @rule(dtype=st.sampled_from([torch.float64, torch.float32]))
    def model_to(self, dtype):
        """model.to(dtype): every parameter's data and gradient converted."""
        def change(params, optimizer):
            for p in params:
                p.data = p.data.to(dtype)
                if p.grad is not None:
                    p.grad = p.grad.to(dtype)
        self.both(change)

    # ------------------------------------------------------------------------------------------------------ state
    @rule(i=st.integers(0, 2), key=st.sampled_from(KEYS), kind=st.sampled_from(["restart", "other-shape", "in-place"]))
    @precondition(lambda self: len(self.torch.state) > 0)
    def change_state(self, i, key, kind):
        """A moment restarted (replaced, or filled in place) or replaced by one of the wrong shape. exp_avg restarts at
        0, exp_avg_sq at 0.25: zeroed under a kept exp_avg it would make the next update ~lr * m / |g|, where the last
        bits of g = grad + weight_decay * p (torch's CPU kernels contract it into an FMA, ours round twice) come out
        as per-mille differences: a conditioning experiment, not what this machine is about."""
        level = 0.0 if key == "exp_avg" else 0.25

        def change(params, optimizer):
            state = optimizer.state.get(params[i])
            if not state or key not in state:
                return
            if kind == "in-place":
                state[key].fill_(level)
            else:
                shape = params[i].shape if kind == "restart" else (2,)
                state[key] = torch.full(shape, level, dtype=state[key].dtype)
        self.both(change)

    @rule(i=st.integers(0, 2), value=st.sampled_from([0.0, 3.0]))
    def restart_step(self, i, value):
        def change(params, optimizer):
            state = optimizer.state.get(params[i])
            if state:
                state["step"] = torch.tensor(value)
        self.both(change)

    @rule(i=st.integers(0, 2))
    def reset_state(self, i):
        self.both(lambda params, optimizer: optimizer.state.__setitem__(params[i], {}))

    @rule()
    def reload_state_dict(self):
        """Each saves and loads its own state_dict. fusedadam refuses a state_dict whose state does not fit its
        parameters at load (ValueError); torch loads it and fails at the next step. Where ours refuses, the twin is
        left as it was too, after checking that torch's next step would fail on the same mismatch."""
        try:
            self.ours.load_state_dict(self.ours.state_dict())
        except ValueError as error:
            assert "belongs to a different model" in str(error), error
            assert any(isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape
                       for p in self.theirs for v in self.torch.state.get(p, {}).values())
            return
        self.torch.load_state_dict(self.torch.state_dict())

    @rule()
    @precondition(lambda self: len(self.mine) < 5)
    def add_param_group(self):
        values = self.fresh((6,))
        for params, optimizer in ((self.mine, self.ours), (self.theirs, self.torch)):
            p = values.clone().requires_grad_()
            p.grad = values.flip(0).clone()
            params.append(p)
            optimizer.add_param_group({"params": [p], "lr": 0.02})

    # ------------------------------------------------------------------------------------------------------ steps
    @rule()
    def step(self):
        before = self.snapshot(self.mine, self.ours)
        for p in self.theirs:
            self.convert_twin_state(p)
        outcomes = []
        for optimizer in (self.ours, self.torch):
            try:
                optimizer.step()
                outcomes.append(None)
            except Exception as error:  # noqa: BLE001 - the kind is what is compared
                outcomes.append(error)
        ours, theirs = outcomes
        if ours is None and theirs is None:
            self.assert_same(before)
            self.align_twin()
            return
        if ours is not None and theirs is None and self.grad_of_another_dtype():
            # The one refusal torch does not share (README, "Between steps"): its for-loop Adam promotes a gradient
            # left in another dtype than its parameter's (p.data swapped to float64 under a float32 gradient).
            assert isinstance(ours, RuntimeError) and "dtype" in str(ours), ours
            self.assert_unchanged(before)
            self.restore(self.theirs, self.torch, before)
            return
        assert ours is not None and theirs is not None, (
            f"fusedadam {'raised ' + repr(ours) if ours else 'stepped'}, torch "
            f"{'raised ' + repr(theirs) if theirs else 'stepped'}")
        assert type(ours) is type(theirs) or (isinstance(ours, RuntimeError) and isinstance(theirs, RuntimeError)), (
            ours, theirs)
        # A refused step wrote nothing of ours; torch's for-loop may have stepped the parameters before the bad one,
        # so the twin is put back to where ours is.
        self.assert_unchanged(before)
        self.restore(self.theirs, self.torch, before)

    # ---------------------------------------------------------------------------------------------------- helpers
    @staticmethod
    def snapshot(params, optimizer):
        return ([p.detach().clone() for p in params],
                [{k: (v.detach().clone() if isinstance(v, torch.Tensor) else v)
                  for k, v in optimizer.state.get(p, {}).items()} for p in params])

    def assert_unchanged(self, before):
        params, states = before
        for p, was in zip(self.mine, params):
            assert p.shape != was.shape or torch.equal(p.detach(), was)
        for p, was in zip(self.mine, states):
            for key, value in was.items():
                now = self.ours.state[p][key]
                assert not isinstance(value, torch.Tensor) or now.shape != value.shape or torch.equal(now, value), key

    def restore(self, params, optimizer, before):
        values, states = before
        with torch.no_grad():
            for p, v, state in zip(params, values, states):
                if p.shape == v.shape and p.dtype == v.dtype:
                    p.copy_(v)
                if not state:
                    optimizer.state.pop(p, None)  # state torch created for a parameter of the refused step
                    continue
                entry = optimizer.state.get(p)
                for key, value in state.items():
                    if entry is not None and key in entry and isinstance(value, torch.Tensor) \
                            and entry[key].shape == value.shape:
                        entry[key].copy_(value)  # converting: ours converts a moment's dtype only at its next step

    def grad_of_another_dtype(self):
        return any(p.grad is not None and p.grad.dtype != p.dtype for p in self.mine)

    def assert_same(self, before):
        """Every value within 1e-5 of the magnitude of what it was computed from (its value before the step and the
        change the step made), as the correctness tests measure: a state the machine made ill-conditioned (exp_avg_sq
        zeroed under a kept exp_avg, updates of ~70 lr) may cancel to a small result whose rounding is the
        operands'."""
        values, states = before
        for i, (mine, theirs) in enumerate(self.pairs()):
            _assert_close_to_operands(mine.detach(), theirs.detach(), values[i], f"parameter {i}")
            ours, torchs = self.ours.state.get(mine, {}), self.torch.state.get(theirs, {})
            assert set(ours) == set(torchs), (i, set(ours), set(torchs))
            for key in ours:
                was = states[i].get(key)
                _assert_close_to_operands(torch.as_tensor(ours[key]), torch.as_tensor(torchs[key]),
                                          was if isinstance(was, torch.Tensor) else None,
                                          f"state[{key!r}] of parameter {i}")

    def align_twin(self):
        """The twin continues from our numbers, so that each step is compared from identical inputs. Without it the
        last-bit differences of fp32 (torch's for-loop and the kernels round differently) add up over steps, and
        a state the user made ill-conditioned (exp_avg_sq zeroed under a kept exp_avg: updates of ~70 lr where
        weight decay cancels the gradient) turns one ulp of a step into tens of ulps at the next."""
        with torch.no_grad():
            for mine, theirs in self.pairs():
                theirs.copy_(mine)
                ours, torchs = self.ours.state.get(mine, {}), self.torch.state.get(theirs, {})
                for key, value in ours.items():
                    if isinstance(value, torch.Tensor) and isinstance(torchs.get(key), torch.Tensor):
                        torchs[key].copy_(value)

    @invariant()
    def twins_have_twin_shapes(self):
        assert [p.shape for p in self.mine] == [p.shape for p in self.theirs]


def _assert_close_to_operands(ours, theirs, before, what, rtol=1e-5, atol=1e-6):
    ours, theirs = ours.double(), theirs.double()
    magnitude = theirs.abs()
    if before is not None and before.shape == theirs.shape:
        before = before.double()
        magnitude = before.abs() + (theirs - before).abs()
    error = (ours - theirs).abs()
    worst = (error - (atol + rtol * magnitude)).argmax() if error.numel() else None
    assert worst is None or error.flatten()[worst] <= atol + rtol * magnitude.flatten()[worst], (
        f"{what}: element {worst.item()} is {ours.flatten()[worst].item()!r}, torch's {theirs.flatten()[worst].item()!r}"
        f" (from {magnitude.flatten()[worst].item():.3g} in magnitude)")


def _machine(backend):
    class Machine(Twins):
        pass
    Machine.backend = backend
    Machine.__name__ = f"Twins_{backend.replace('-', '_')}"
    return Machine


@pytest.mark.parametrize("backend", ["cpu", "cuda-host", "torch"])
def test_whatever_users_do_between_steps_is_honoured_or_refused_like_torch(backend):
    spec = next(s for s in BACKEND_SPECS if s.name == backend)
    reason = spec.skip_reason()
    if reason:
        pytest.skip(reason)
    machine = _machine(backend)
    machine.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=30, deadline=None,
                                         suppress_health_check=list(HealthCheck))
    machine.TestCase().runTest()
