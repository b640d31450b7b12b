"""Plain 16-bit storage and the low-memory and mixed-precision modes (master weights, bf16 / fp32 states, stochastic
rounding, Kahan summation) on every native backend: each against its float64 emulation, the properties each exists
for, their state in state_dict(), and their errors."""
import copy

import pytest
import torch

from fusedadam import FusedAdam, FusedAdamW
from fusedadam.precision import precision_of
from fusedadam.reference import (AdamConfig, emulated_adam_step, round_to_bf16_stochastically, rounding_bits,
                                 rounding_key)
from harness import make_problem
from precision_harness import (assert_stored_like, emulated_state, fresh_emulated_state, operand_magnitudes,
                               resumed_from_checkpoint)
from specs import backend_params, require

bf16, fp16, fp32 = torch.bfloat16, torch.float16, torch.float32

# name -> (parameter dtype, options): every storage combination of 16-bit values.
PRECISION_MODES = {
    "bf16": (bf16, dict()),
    "fp16": (fp16, dict()),
    "bf16-master": (bf16, dict(master_weights=True)),
    "bf16-master-bf16-states": (bf16, dict(master_weights=True, state_dtype=bf16)),
    "fp16-master": (fp16, dict(master_weights=True)),
    "fp16-master-bf16-states": (fp16, dict(master_weights=True, state_dtype=bf16)),
    "fp32-bf16-states": (fp32, dict(state_dtype=bf16)),
    "bf16-fp32-states": (bf16, dict(state_dtype=fp32)),
    "fp16-fp32-states": (fp16, dict(state_dtype=fp32)),
    "fp16-bf16-states": (fp16, dict(state_dtype=bf16)),
    "bf16-stochastic": (bf16, dict(rounding="stochastic")),
    "bf16-stochastic-fp32-states": (bf16, dict(rounding="stochastic", state_dtype=fp32)),
    "bf16-kahan": (bf16, dict(kahan_summation=True)),
    "bf16-kahan-fp32-states": (bf16, dict(kahan_summation=True, state_dtype=fp32)),
}

ADAM_MODES = {
    "adamw-amsgrad": AdamConfig(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True),
    "adam-l2-maximize": AdamConfig(lr=0.003, weight_decay=0.05, maximize=True),
}

SHAPES = [(7,), (1001,), (33, 65), (0,), (70_001,)]
NATIVE_BACKENDS = [b for b in backend_params() if b.values[0].name != "torch"]
# The emulation test runs the CPU kernel under every ISA variant this CPU runs: each rounds with its own instructions.
EVERY_NATIVE_PATH = [b for b in backend_params(cpu_isas=True) if b.values[0].name != "torch"]


def _stored(p, state, name):
    return {"param": p, "master": state.get("master_param"), "compensation": state.get("kahan_compensation")}.get(
        name, state.get(name))


@pytest.mark.parametrize("adam", ADAM_MODES.values(), ids=ADAM_MODES.keys())
@pytest.mark.parametrize("mode", PRECISION_MODES.values(), ids=PRECISION_MODES.keys())
@pytest.mark.parametrize("backend", EVERY_NATIVE_PATH)
def test_each_mode_matches_its_float64_emulation(backend, mode, adam):
    require(backend)
    dtype, options = mode
    problem = make_problem(SHAPES, dtype, backend.device)
    params = [p.clone() for p in problem.params]
    optimizer = FusedAdam(params, backend=backend.name, rounding_seed=2024, **adam.torch_kwargs(), **options)
    precision = precision_of(optimizer.param_groups[0], dtype, 1)  # every size: no option here depends on it
    for step_grads in problem.grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        befores = [emulated_state(p, optimizer.state[p], precision, adam.amsgrad) if optimizer.state[p] else None
                   for p in params]
        optimizer.step()
        for salt, (p, g, before) in enumerate(zip(params, step_grads, befores)):
            if before is None:  # the first step: the state the optimizer created is the emulation's start
                before = fresh_emulated_state(problem.params[salt], dtype, precision)
            after = copy.deepcopy(before)
            emulated_adam_step(after, g.cpu(), adam, seed=2024, salt=salt)
            operands = operand_magnitudes(before, after, g, adam)
            state = optimizer.state[p]
            assert state["step"].item() == after.step
            checks = {"param": (after.param, dtype), "exp_avg": (after.exp_avg, precision.state_dtype),
                      "exp_avg_sq": (after.exp_avg_sq, precision.state_dtype)}
            if adam.amsgrad:
                checks["max_exp_avg_sq"] = (after.max_exp_avg_sq, precision.state_dtype)
            if precision.master:
                checks["master"] = (after.master, fp32)
            for name, (expected, stored_dtype) in checks.items():
                ours = _stored(p, state, name)
                assert ours.dtype == stored_dtype, name
                assert_stored_like(f"tensor {salt} {name}", ours, expected, stored_dtype, operands[name])
            if precision.compensation:
                # Where the parameter landed on the other side of a rounding boundary, the compensation took the
                # difference: compare it where the parameter agrees, and the compensated sum everywhere.
                compensation = state["kahan_compensation"]
                assert compensation.dtype == bf16
                agrees = p.cpu().double() == after.param
                # The compensation is ~2^-8 of the parameter and carries the fp32 error of the update (~2^-24 of
                # the parameter), so ~1% of its bf16 roundings may flip: bounded, not required bit-equal.
                assert_stored_like(f"tensor {salt} compensation", compensation.cpu()[agrees],
                                   after.compensation[agrees], bf16, operands["compensation"][agrees], exact_share=0)
                total = p.cpu().double() + compensation.cpu().double()
                assert_stored_like(f"tensor {salt} param + compensation", total.to(bf16),
                                   (after.param + after.compensation).to(bf16).double(), bf16, operands["param"])


# With beta1 = beta2 = 0 and eps = 0, one step moves every parameter by exactly lr * sign(grad): a power-of-two
# lr next to bf16 parameters of magnitude ~1 gives fp32 values whose rounding to bf16 is known exactly.
EXACT_STEP = dict(lr=2.0**-12, betas=(0.0, 0.0), eps=0.0)


def _bf16_problem(n, device, low=1.0, high=2.0):
    p = (torch.rand(n, dtype=torch.float64) * (high - low) + low).to(bf16).to(device)
    g = torch.where(torch.rand(n) < 0.5, -1.0, 1.0).to(bf16).to(device)
    return p, g


@pytest.mark.parametrize("backend", NATIVE_BACKENDS)
def test_stochastic_rounding_uses_the_specified_bits_and_is_unbiased(backend):
    require(backend)
    n = 200_000
    p, _ = _bf16_problem(n, backend.device)
    g = torch.ones_like(p)  # every exact value a quarter ulp below p: rounding to nearest would be biased by +lr
    start = p.clone()
    p.grad = g
    FusedAdam([p], rounding="stochastic", rounding_seed=77, backend=backend.name, **EXACT_STEP).step()
    exact = start.float() - EXACT_STEP["lr"] * g.float()  # exact in fp32
    random = rounding_bits(rounding_key(seed=77, salt=0, step=1), n)
    expected = round_to_bf16_stochastically(exact.cpu(), random)
    assert torch.equal(p.cpu().view(torch.int16), expected.view(torch.int16))
    # Unbiased: each value is rounded up with probability (its distance to the lower bf16 value) / ulp, so the mean
    # of the rounded values is the mean of the exact ones, within a few standard errors.
    ulp = torch.exp2(torch.floor(torch.log2(exact.abs().cpu()))) * 2.0**-7
    bias = (p.cpu().double() - exact.cpu().double()).mean().item()
    standard_error = (ulp.double() / 2).mean().item() / n**0.5
    assert abs(bias) < 5 * standard_error < EXACT_STEP["lr"] / 2, (bias, standard_error)


@pytest.mark.parametrize("backend", NATIVE_BACKENDS)
def test_stochastic_rounding_is_reproducible_for_a_seed_and_differs_between_seeds(backend):
    require(backend)
    p0, g = _bf16_problem(5000, backend.device)

    def run(seed, threads=None):
        p = p0.clone()
        optimizer = FusedAdam([p], rounding="stochastic", rounding_seed=seed, backend=backend.name, **EXACT_STEP)
        for _ in range(3):
            p.grad = g.clone()
            optimizer.step()
        return p

    first = run(5)
    assert torch.equal(first, run(5))
    assert not torch.equal(first, run(6))
    torch.manual_seed(31)
    by_default = run(None)  # rounding_seed defaults to torch.initial_seed()
    assert torch.equal(by_default, run(31))


@pytest.mark.parametrize("backend", NATIVE_BACKENDS)
def test_kahan_summation_keeps_updates_rounding_to_nearest_loses(backend):
    """lr = 2^-12 next to parameters in [1, 2) (bf16 ulp 2^-7): rounding to nearest drops every update; Kahan's
    compensation carries them, so after 64 steps the parameter moved by 64 * lr (to within the compensation,
    which holds the rest), exactly as the fp32 emulation of csrc/param_update.h says."""
    require(backend)
    p0, g = _bf16_problem(3000, backend.device)
    results = {}
    for options in (dict(), dict(kahan_summation=True)):
        p = p0.clone()
        optimizer = FusedAdam([p], backend=backend.name, **EXACT_STEP, **options)
        for _ in range(64):
            p.grad = g.clone()
            optimizer.step()
        results[bool(options)] = (p, optimizer.state[p])
    nearest, _ = results[False]
    assert torch.equal(nearest, p0)  # every update lost
    kahan, state = results[True]
    target = p0.double() - 64 * EXACT_STEP["lr"] * g.double()
    total = kahan.double() + state["kahan_compensation"].double()
    assert (total - target).abs().max().item() <= 2.0**-7 * 2.0**-8 * 2  # the compensation's own rounding
    assert (kahan.double() - target).abs().max().item() <= 2.0**-7  # within one ulp of the exact sum


@pytest.mark.parametrize("param_dtype", [bf16, fp16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("backend", NATIVE_BACKENDS)
def test_master_weights_step_exactly_like_fp32_parameters(backend, param_dtype):
    """With fp32 states the master copy is an fp32 Adam on the 16-bit gradients, bit for bit; the 16-bit parameter
    is its rounding."""
    require(backend)
    problem = make_problem([(1001,), (64, 33)], param_dtype, backend.device)
    low = [p.clone() for p in problem.params]
    high = [p.float() for p in problem.params]
    kwargs = dict(lr=0.01, weight_decay=0.1, amsgrad=True, backend=backend.name)
    mixed = FusedAdamW(low, master_weights=True, **kwargs)
    full = FusedAdamW(high, **kwargs)
    for step_grads in problem.grads:
        for a, b, g in zip(low, high, step_grads):
            a.grad, b.grad = g.clone(), g.float()
        mixed.step()
        full.step()
    for a, b in zip(low, high):
        assert torch.equal(mixed.state[a]["master_param"], b)
        assert torch.equal(a, b.to(param_dtype))
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert torch.equal(mixed.state[a][key], full.state[b][key])


@pytest.mark.parametrize("mode", PRECISION_MODES.values(), ids=PRECISION_MODES.keys())
def test_state_dict_round_trip_continues_identically(mode):
    """Saved after 2 steps and loaded into a fresh optimizer, the state keeps its dtypes (the fp32 master copy is
    not rounded to the parameter's dtype, as torch's loader would) and the next steps are bit-identical."""
    dtype, options = mode
    problem = make_problem([(300,), (17, 5)], dtype, steps=4)

    def fresh():
        params = [p.clone() for p in problem.params]
        return params, FusedAdamW(params, lr=0.01, rounding_seed=9, **options)

    (params, optimizer), (restored, loaded) = resumed_from_checkpoint(fresh, problem.grads)
    for p, q in zip(restored, params):
        assert torch.equal(p, q)
        for key, value in optimizer.state[q].items():
            assert torch.equal(loaded.state[p][key], value), key


def test_a_torch_checkpoint_loads_into_master_weights():
    """torch.optim.AdamW's checkpoint of bf16 parameters has no master copy: loading it keeps this optimizer's
    options, and the first step makes the master from the parameter."""
    p = torch.randn(50).to(bf16)
    theirs = torch.optim.AdamW([p.clone()], lr=0.01)
    q = theirs.param_groups[0]["params"][0]
    q.grad = torch.randn(50).to(bf16)
    theirs.step()
    mine = FusedAdamW([q.detach().clone()], lr=0.01, master_weights=True)
    mine.load_state_dict(theirs.state_dict())
    assert mine.param_groups[0]["master_weights"] is True
    r = mine.param_groups[0]["params"][0]
    r.grad = torch.randn(50).to(bf16)
    mine.step()
    state = mine.state[r]
    assert state["master_param"].dtype == fp32 and state["exp_avg"].dtype == fp32
    assert torch.equal(r, state["master_param"].to(bf16))


def test_changing_state_dtype_between_steps_converts_the_state():
    p = torch.randn(100)
    optimizer = FusedAdam([p], lr=0.01)
    p.grad = torch.randn(100)
    optimizer.step()
    m = optimizer.state[p]["exp_avg"].clone()
    optimizer.param_groups[0]["state_dtype"] = bf16
    optimizer.step()
    assert optimizer.state[p]["exp_avg"].dtype == bf16
    expected = (0.9 * m.to(bf16).float() + 0.1 * p.grad).to(bf16)
    assert torch.equal(optimizer.state[p]["exp_avg"], expected)


@pytest.mark.parametrize("kwargs, match", [
    (dict(master_weights=1), r"master_weights must be True or False"),
    (dict(kahan_summation="yes"), r"kahan_summation must be True or False"),
    (dict(rounding="up"), r"rounding must be 'nearest' or 'stochastic', got 'up'"),
    (dict(state_dtype=torch.float16), r"state_dtype must be None .*, torch.float32, torch.bfloat16 or '8bit'"),
    (dict(state_dtype="bfloat16"), r"state_dtype must be None"),
    (dict(rounding_seed=-1), r"rounding_seed must be an integer in \[0, 2\*\*64\)"),
    (dict(rounding="stochastic", kahan_summation=True), r"choose one"),
    (dict(master_weights=True, rounding="stochastic"), r"master_weights=True already keeps every update in fp32"),
    (dict(master_weights=True, kahan_summation=True), r"master_weights=True already keeps"),
])
def test_bad_precision_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FusedAdam([torch.randn(3).to(bf16)], **kwargs)


@pytest.mark.parametrize("param, kwargs, match", [
    (torch.randn(3).half(), dict(rounding="stochastic"),
     r"parameter 0 of param group 0: rounding='stochastic' is for bf16 parameters.*master_weights=True"),
    (torch.randn(3).half(), dict(kahan_summation=True), r"kahan_summation=True is for bf16 parameters"),
    (torch.randn(3).double(), dict(state_dtype=bf16), r"an fp64 parameter keeps fp64 state"),
    (torch.randn(3).to(bf16), dict(master_weights=True, backend="torch"),
     r"master_weights=True runs in the native kernels only .*backend='torch' was asked for"),
    (torch.randn(3, dtype=torch.complex64), dict(state_dtype=bf16),
     r"state_dtype=torch.bfloat16 runs in the native kernels only .*cpu: its dtype torch.complex64"),
    (torch.randn(4, 2).to(bf16)[::2], dict(kahan_summation=True), r"not one dense block"),
])
def test_options_a_parameter_cannot_take_are_refused(param, kwargs, match):
    with pytest.raises(ValueError, match=match):
        FusedAdam([param], **kwargs)


def test_fp32_parameters_are_their_own_master():
    """master_weights, stochastic rounding and Kahan apply to 16-bit parameters; an fp32 one in the same group
    steps exactly as without them."""
    p = torch.randn(100)
    q = p.clone()
    a = FusedAdam([p], lr=0.01, master_weights=True)
    b = FusedAdam([q], lr=0.01)
    for _ in range(3):
        g = torch.randn(100)
        p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert torch.equal(p, q) and set(a.state[p]) == set(b.state[q])


def test_an_option_made_invalid_between_steps_changes_nothing():
    p = torch.randn(10).half()
    optimizer = FusedAdam([p], lr=0.01)
    p.grad = torch.randn(10).half()
    optimizer.step()
    before = (p.clone(), copy.deepcopy(optimizer.state_dict()))
    optimizer.param_groups[0]["rounding"] = "stochastic"  # fp16: refused
    with pytest.raises(ValueError, match="rounding='stochastic' is for bf16 parameters"):
        optimizer.step()
    assert torch.equal(p, before[0])
    for key, value in optimizer.state_dict()["state"][0].items():
        assert torch.equal(value, before[1]["state"][0][key])


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
@pytest.mark.parametrize("mode", PRECISION_MODES.values(), ids=PRECISION_MODES.keys())
def test_bytes_held_is_what_the_state_holds(mode, amsgrad):
    """The README's and the benchmark's bytes per parameter (Precision.bytes_held) are the parameter and state
    tensors the optimizer really keeps."""
    dtype, options = mode
    p = torch.randn(1000).to(dtype)
    optimizer = FusedAdam([p], amsgrad=amsgrad, **options)
    p.grad = torch.randn_like(p)
    optimizer.step()
    held = p.nbytes + sum(v.nbytes for k, v in optimizer.state[p].items() if k != "step")
    assert held == precision_of(optimizer.param_groups[0], dtype, p.numel()).bytes_held(dtype, amsgrad) * p.numel()
