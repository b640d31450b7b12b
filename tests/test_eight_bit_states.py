"""state_dtype="8bit": exp_avg and exp_avg_sq (and max_exp_avg_sq) held as one byte per element plus an fp32 absmax
per block of 256 (fusedadam/quantization.py), on the CPU and Triton kernels. Each step against its float64 emulation
(fusedadam.reference), the memory it saves, its checkpoints in both directions, and its errors."""
import copy
import math

import pytest
import torch

from fusedadam import FusedAdam, FusedAdamW, to_torch_state_dict
from fusedadam.backends import EIGHT_BIT_BACKENDS
from fusedadam.precision import ABSMAX_KEYS, MOMENT_MAPS, precision_of
from fusedadam.quantization import BLOCK, SMALLEST_QUANTIZED, dequantize_moment, memory_order, quantize_moment
from fusedadam.reference import AdamConfig, emulated_adam_step
from harness import make_problem
from precision_harness import (assert_stored_like, emulated_state, fresh_emulated_state, operand_magnitudes,
                               resumed_from_checkpoint)
from specs import backend_params, require

bf16, fp16, fp32 = torch.bfloat16, torch.float16, torch.float32

# name -> (parameter dtype, options)
EIGHT_BIT_MODES = {
    "fp32": (fp32, dict(state_dtype="8bit")),
    "bf16": (bf16, dict(state_dtype="8bit")),
    "fp16": (fp16, dict(state_dtype="8bit")),
    "bf16-master": (bf16, dict(state_dtype="8bit", master_weights=True)),
    "fp16-master": (fp16, dict(state_dtype="8bit", master_weights=True)),
    "bf16-stochastic": (bf16, dict(state_dtype="8bit", rounding="stochastic")),
    "bf16-kahan": (bf16, dict(state_dtype="8bit", kahan_summation=True)),
}
ADAM_MODES = {
    "adam": AdamConfig(lr=0.01),
    "adamw-amsgrad": AdamConfig(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True),
    "adam-l2-maximize": AdamConfig(lr=0.003, weight_decay=0.05, maximize=True),
}
# Under SMALLEST_QUANTIZED (fp32 moments), at it, a short last block, several thread slices, none at all.
SHAPES = [(7,), (SMALLEST_QUANTIZED - 1,), (SMALLEST_QUANTIZED,), (70_001,), (0,)]
# The backends whose kernels step 8-bit moments, the CPU kernel under each ISA variant this CPU runs.
EIGHT_BIT_PATHS = [b for b in backend_params(cpu_isas=True) if b.values[0].name in EIGHT_BIT_BACKENDS]
CPU_PATHS = [b for b in EIGHT_BIT_PATHS if b.values[0].name == "cpu"]
# Codes that must equal the emulation's: the rest sit where fp32 and float64 moments round to neighbouring codes.
EXACT_CODES = 0.99


def grid_step(values: torch.Tensor, absmax: torch.Tensor, fmap) -> torch.Tensor:
    """Per element (memory order), the spacing of the map's grid at that decoded value in its block."""
    y = values.abs() * fmap.top / absmax.double().repeat_interleave(BLOCK)[: values.numel()]
    smallest_normal = 2.0 ** (1 - fmap.bias)
    normal = torch.exp2(torch.floor(torch.log2(y.clamp_min(smallest_normal))) - fmap.mantissa_bits)
    spacing = torch.where(y >= smallest_normal, normal, torch.full_like(y, fmap.subnormal_step))
    return spacing * absmax.double().repeat_interleave(BLOCK)[: values.numel()] / fmap.top


def assert_codes_like(name, codes, absmax, expected_codes, expected_absmax, fmap, operands):
    """The kernel's 8-bit moment against the emulation's: absmax within the fp32 error of its operands, codes equal
    but for a few that sit on a rounding boundary, and those a grid step (of the larger absmax) apart at most."""
    codes, absmax = codes.cpu(), absmax.cpu()
    assert codes.dtype == torch.uint8 and absmax.dtype == fp32, name
    assert codes.shape == expected_codes.shape and absmax.shape == expected_absmax.shape, name
    if codes.numel() == 0:
        return
    block_operands = torch.nn.functional.pad(memory_order(operands), (0, -codes.numel() % BLOCK))
    block_operands = block_operands.reshape(-1, BLOCK).amax(dim=1)
    assert_stored_like(f"{name} absmax", absmax, expected_absmax.double(), fp32, block_operands)
    exact = (memory_order(codes) == memory_order(expected_codes)).double().mean().item()
    assert exact >= EXACT_CODES, f"{name}: only {exact:.2%} of the codes equal the emulation's"
    ours = memory_order(dequantize_moment(codes, absmax, fmap)).double()
    theirs = memory_order(dequantize_moment(expected_codes, expected_absmax, fmap)).double()
    larger = torch.maximum(absmax, expected_absmax)
    bound = grid_step(torch.maximum(ours.abs(), theirs.abs()), larger, fmap) * (1 + 1e-5)
    bound = bound + 8 * torch.finfo(fp32).eps * memory_order(operands)
    worst = int(((ours - theirs).abs() - bound).argmax())
    assert (ours - theirs).abs()[worst] <= bound[worst], (
        f"{name}: element {worst} decodes to {ours[worst].item():.6e}, the emulation's to {theirs[worst].item():.6e}: "
        "more than one grid step apart")


def kernel_state(p, state, precision, amsgrad):
    """The emulation's view of the kernel's state: 8-bit moments decoded to the values they stand for."""
    decoded = dict(state)
    if precision.quantized:
        for key in precision.moment_keys(amsgrad):
            decoded[key] = dequantize_moment(state[key], state[ABSMAX_KEYS[key]], MOMENT_MAPS[key])
    return emulated_state(p, decoded, precision, amsgrad)


def emulation_cases():
    """Every 8-bit path x storage x Adam mode, except under Triton's interpreter (~3 s a case): there every storage
    with AMSGrad, which touches all three moments, and fp32 with every Adam mode. The kernel's code differs by storage
    and by Adam mode, not by their product; on a GPU (`-m gpu`) Triton runs every case."""
    for path in EIGHT_BIT_PATHS:
        spec = path.values[0]
        for mode_name, mode in EIGHT_BIT_MODES.items():
            for adam_name, adam in ADAM_MODES.items():
                interpreted = spec.name == "triton" and spec.device == "cpu"
                if interpreted and adam_name != "adamw-amsgrad" and mode_name != "fp32":
                    continue
                yield pytest.param(spec, mode, adam, id=f"{path.id}-{mode_name}-{adam_name}", marks=path.marks)


@pytest.mark.parametrize("backend, mode, adam", emulation_cases())
def test_each_step_matches_its_float64_emulation(backend, mode, adam):
    """Every step, from the state the kernel stored at the previous one: the parameter (moved with this step's fp32
    moments, before they are quantized) as in the other modes, the moments' codes and block absmaxes as the map
    writes them, and tensors under SMALLEST_QUANTIZED elements with fp32 moments. The last shape ends in a partial
    block inside a partial piece, several chunks long (the Triton kernel's chunks are 16384 elements)."""
    require(backend)
    dtype, options = mode
    problem = make_problem(SHAPES, dtype, torch.device(backend.device), seed=15)
    params = [p.clone() for p in problem.params]
    optimizer = FusedAdam(params, backend=backend.name, rounding_seed=7, **adam.torch_kwargs(), **options)
    precisions = [precision_of(optimizer.param_groups[0], dtype, p.numel()) for p in params]
    assert [p.quantized for p in precisions] == [False, False, True, True, False]
    for step_grads in problem.grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        befores = [kernel_state(p, optimizer.state[p], precision, adam.amsgrad) if optimizer.state[p] else None
                   for p, precision in zip(params, precisions)]
        optimizer.step()
        for salt, (p, g, before, precision) in enumerate(zip(params, step_grads, befores, precisions)):
            if before is None:
                before = fresh_emulated_state(problem.params[salt], dtype, precision)
            after = copy.deepcopy(before)
            emulated_adam_step(after, g.cpu(), adam, seed=7, salt=salt)
            operands = operand_magnitudes(before, after, g, adam)
            state = optimizer.state[p]
            assert_stored_like(f"tensor {salt} param", p, after.param, dtype, operands["param"])
            if precision.master:
                assert_stored_like(f"tensor {salt} master", state["master_param"], after.master, fp32,
                                   operands["master"])
            for key in precision.moment_keys(adam.amsgrad):
                if precision.quantized:
                    assert_codes_like(f"tensor {salt} {key}", state[key], state[ABSMAX_KEYS[key]], after.codes[key],
                                      after.absmax[key], MOMENT_MAPS[key], operands[key])
                else:
                    assert state[key].dtype == fp32 and ABSMAX_KEYS[key] not in state
                    assert_stored_like(f"tensor {salt} {key}", state[key], getattr(after, key), fp32, operands[key])


def test_a_transposed_parameter_is_quantized_in_memory_order():
    """Blocks follow the parameter's memory, as the kernel walks it: a transposed parameter's codes are its moments'
    memory-order blocks, which is what to_torch_state_dict decodes."""
    p = torch.randn(300, 40).t()  # 40 x 300, column-major
    q = p.detach().clone().contiguous()
    mine = FusedAdamW([p], lr=0.01, state_dtype="8bit")
    theirs = FusedAdamW([q], lr=0.01)
    g = torch.randn(40, 300)
    p.grad, q.grad = g.t().contiguous().t(), g.clone()
    mine.step()
    theirs.step()
    state = mine.state[p]
    assert state["exp_avg"].stride() == p.stride()
    for key in ("exp_avg", "exp_avg_sq"):
        codes, absmax = quantize_moment(theirs.state[q][key].t().contiguous().t(), MOMENT_MAPS[key])
        assert torch.equal(memory_order(state[key]), memory_order(codes)), key
        assert torch.equal(state[ABSMAX_KEYS[key]], absmax), key
    decoded = to_torch_state_dict(mine.state_dict())["state"][0]["exp_avg"]
    expected = dequantize_moment(state["exp_avg"], state["exp_avg_absmax"], MOMENT_MAPS["exp_avg"])
    assert torch.equal(decoded, expected) and decoded.shape == p.shape


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_state_bytes_per_parameter(amsgrad):
    """At least SMALLEST_QUANTIZED elements: 1 byte per moment and element plus 4 per block, counted from the state
    tensors (<= 2.1 bytes per parameter for m and v). Smaller tensors keep fp32 moments: 8 bytes."""
    big, small = torch.randn(SMALLEST_QUANTIZED * 3 + 5), torch.randn(100)
    optimizer = FusedAdamW([big, small], amsgrad=amsgrad, state_dtype="8bit")
    big.grad, small.grad = torch.randn_like(big), torch.randn_like(small)
    optimizer.step()
    moments = 3 if amsgrad else 2

    def state_bytes(p):
        return sum(v.nbytes for k, v in optimizer.state[p].items() if k != "step")

    assert state_bytes(big) == moments * (big.numel() + 4 * math.ceil(big.numel() / BLOCK))
    assert state_bytes(big) / big.numel() <= 2.1 * moments / 2
    assert state_bytes(small) == moments * 4 * small.numel()
    held = precision_of(optimizer.param_groups[0], fp32, big.numel()).bytes_held(fp32, amsgrad) * big.numel()
    assert held == pytest.approx(big.nbytes + moments * (big.numel() + 4 * big.numel() / BLOCK))


@pytest.mark.parametrize("mode", EIGHT_BIT_MODES.values(), ids=EIGHT_BIT_MODES.keys())
def test_state_dict_round_trip_continues_bit_identically(mode):
    dtype, options = mode
    problem = make_problem([(SMALLEST_QUANTIZED + 300,), (17, 5)], dtype, steps=4, seed=3)

    def fresh():
        params = [p.clone() for p in problem.params]
        return params, FusedAdamW(params, lr=0.01, amsgrad=True, rounding_seed=9, **options)

    (params, optimizer), (restored, loaded) = resumed_from_checkpoint(fresh, problem.grads)
    for p, q in zip(restored, params):
        assert torch.equal(p, q)
        assert set(loaded.state[p]) == set(optimizer.state[q])
        for key, value in optimizer.state[q].items():
            assert torch.equal(loaded.state[p][key], value), key


def test_a_torch_adamw_checkpoint_is_quantized_on_load():
    p = torch.randn(SMALLEST_QUANTIZED * 2)
    torch_optimizer = torch.optim.AdamW([p.clone()], lr=0.01)
    q = torch_optimizer.param_groups[0]["params"][0]
    q.grad = torch.randn_like(q)
    torch_optimizer.step()
    mine = FusedAdamW([q.detach().clone()], lr=0.01, state_dtype="8bit")
    mine.load_state_dict(torch_optimizer.state_dict())
    assert mine.param_groups[0]["state_dtype"] == "8bit"
    r = mine.param_groups[0]["params"][0]
    r.grad = torch.zeros_like(r)
    mine.step()  # quantizes the loaded moments first, then steps them with a zero gradient
    state = mine.state[r]
    m, _ = quantize_moment(torch_optimizer.state[q]["exp_avg"], MOMENT_MAPS["exp_avg"])
    m = dequantize_moment(m, quantize_moment(torch_optimizer.state[q]["exp_avg"], MOMENT_MAPS["exp_avg"])[1],
                          MOMENT_MAPS["exp_avg"])
    decoded = dequantize_moment(state["exp_avg"], state["exp_avg_absmax"], MOMENT_MAPS["exp_avg"])
    # One step of m = 0.9 m + 0.1 * 0, re-quantized: within one grid step of 0.9 times the loaded codes' values.
    assert torch.allclose(decoded, 0.9 * m, rtol=2.0**-3, atol=0)
    assert state["exp_avg"].dtype == torch.uint8 and state["step"].item() == 2


def test_to_torch_state_dict_loads_into_torch_adamw_and_continues_alike():
    """torch.optim.AdamW takes the converted checkpoint: its moments are the decoded 8-bit ones, and a step from
    there matches fusedadam's next step to within what quantizing the moments again changes."""
    p = torch.randn(SMALLEST_QUANTIZED * 2 + 11)
    small = torch.randn(10)
    mine = FusedAdamW([p, small], lr=0.01, state_dtype="8bit", master_weights=True)
    for _ in range(3):
        p.grad, small.grad = torch.randn_like(p), torch.randn_like(small)
        mine.step()
    saved = mine.state_dict()
    before = copy.deepcopy(saved)
    converted = to_torch_state_dict(saved)
    for key, value in saved["state"][0].items():  # the input is left as it was
        assert torch.equal(value, before["state"][0][key]), key
    theirs = torch.optim.AdamW([p.detach().clone(), small.detach().clone()], lr=0.01)
    theirs.load_state_dict(converted)
    q = theirs.param_groups[0]["params"][0]
    state = theirs.state[q]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"} and state["exp_avg"].dtype == fp32
    assert torch.equal(state["exp_avg"], dequantize_moment(saved["state"][0]["exp_avg"],
                                                           saved["state"][0]["exp_avg_absmax"], MOMENT_MAPS["exp_avg"]))
    assert "state_dtype" not in theirs.param_groups[0] and "backend" not in theirs.param_groups[0]
    g = torch.randn_like(p)
    p.grad, q.grad = g.clone(), g.clone()
    small.grad = theirs.param_groups[0]["params"][1].grad = torch.zeros(10)
    mine.step()
    theirs.step()
    assert torch.allclose(p, q, rtol=0, atol=1e-6)


def test_a_group_mixes_8bit_and_fp32_moments_by_size_in_one_step():
    """One group, one step: the large tensors share one 8-bit table and the small ones one fp32 table, and each steps
    exactly as it would alone."""
    sizes = [SMALLEST_QUANTIZED, 10, SMALLEST_QUANTIZED * 2 + 1, 4095]
    params = [torch.randn(n) for n in sizes]
    alone = [p.clone() for p in params]
    together = FusedAdamW(params, lr=0.01, state_dtype="8bit")
    singles = [FusedAdamW([p], lr=0.01, state_dtype="8bit") for p in alone]
    for _ in range(3):
        for p, q in zip(params, alone):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        together.step()
        for optimizer in singles:
            optimizer.step()
    for p, q, optimizer in zip(params, alone, singles):
        assert torch.equal(p, q)
        for key, value in together.state[p].items():
            assert torch.equal(value, optimizer.state[q][key]), key


@pytest.mark.parametrize("param, kwargs, error, match", [
    (torch.randn(5000).double(), dict(state_dtype="8bit"), ValueError, r"an fp64 parameter keeps fp64 state"),
    (torch.randn(5000), dict(state_dtype="8-bit"), ValueError, r"state_dtype must be None .* or '8bit', got '8-bit'"),
    (torch.randn(5000), dict(state_dtype="8bit", backend="torch"), ValueError,
     r"state_dtype='8bit' runs in the cpu, cuda, triton, cuda-host backends' kernels, and the torch backend steps "
     r"this parameter \(backend='torch' was asked for\)"),
])
def test_options_8bit_cannot_take_are_refused(param, kwargs, error, match):
    with pytest.raises(error, match=match):
        FusedAdam([param], **kwargs)


def _stepped(**options):
    p = torch.randn(SMALLEST_QUANTIZED + 100)
    optimizer = FusedAdamW([p], lr=0.01, state_dtype="8bit", **options)
    p.grad = torch.randn_like(p)
    optimizer.step()
    return p, optimizer


@pytest.mark.parametrize("tamper, error, match", [
    (lambda s: s.__setitem__("exp_avg_absmax", torch.ones(3)), RuntimeError,
     r"state\['exp_avg_absmax'\] is torch.float32 \(3,\).*needs a floating-point tensor of shape \(17,\)"),
    (lambda s: s.pop("exp_avg_sq_absmax"), KeyError, r"state\['exp_avg_sq'\] holds 8-bit codes .* missing"),
    (lambda s: s.__setitem__("exp_avg_absmax", torch.ones(17, dtype=torch.int32)), RuntimeError,
     r"needs a floating-point tensor"),
    (lambda s: s.__setitem__("exp_avg", torch.zeros(5, dtype=torch.uint8)), RuntimeError,
     r"state\['exp_avg'\] is \(5,\)"),
])
def test_a_state_tensor_replaced_between_steps_is_checked_before_anything_moves(tamper, error, match):
    """The kernel reads one absmax per block and one code per element: a replaced or missing one is refused with
    the parameter named, and nothing (parameter, counter, codes) changes."""
    p, optimizer = _stepped()
    tamper(optimizer.state[p])
    before = p.clone(), {k: v.clone() for k, v in optimizer.state[p].items()}
    p.grad = torch.randn_like(p)
    with pytest.raises(error, match=match):
        optimizer.step()
    assert torch.equal(p, before[0])
    for key, value in optimizer.state[p].items():
        assert torch.equal(value, before[1][key]), key


def _twins():
    """Two optimizers, each of one parameter, at the same point after one step: the same values, the same state."""
    p, optimizer = _stepped()
    q, twin = _stepped()
    with torch.no_grad():
        q.copy_(p)
    twin.load_state_dict(optimizer.state_dict())
    return (p, optimizer), (q, twin)


def test_a_replaced_absmax_of_another_dtype_or_layout_is_used_as_fp32():
    """An absmax of the right shape but another float dtype, or a strided view, is converted, never read raw."""
    (p, optimizer), (reference_p, reference) = _twins()
    state = optimizer.state[p]
    state["exp_avg_absmax"] = state["exp_avg_absmax"].double()
    state["exp_avg_sq_absmax"] = torch.stack([state["exp_avg_sq_absmax"]] * 2, dim=1)[:, 0]  # stride 2
    g = torch.randn_like(p)
    p.grad, reference_p.grad = g.clone(), g.clone()
    optimizer.step()
    reference.step()
    assert torch.equal(p, reference_p)
    assert optimizer.state[p]["exp_avg_absmax"].dtype == fp32


def test_changing_state_dtype_between_steps_converts_both_ways():
    p = torch.randn(SMALLEST_QUANTIZED)
    optimizer = FusedAdam([p], lr=0.01)
    p.grad = torch.randn_like(p)
    optimizer.step()
    m = optimizer.state[p]["exp_avg"].clone()
    optimizer.param_groups[0]["state_dtype"] = "8bit"
    p.grad = torch.zeros_like(p)
    optimizer.step()
    state = optimizer.state[p]
    codes, absmax = quantize_moment(m, MOMENT_MAPS["exp_avg"])
    loaded = dequantize_moment(codes, absmax, MOMENT_MAPS["exp_avg"])
    expected, _ = quantize_moment(0.9 * loaded, MOMENT_MAPS["exp_avg"])
    assert state["exp_avg"].dtype == torch.uint8
    assert (state["exp_avg"].int() - expected.int()).abs().max() <= 1
    decoded = dequantize_moment(state["exp_avg"], state["exp_avg_absmax"], MOMENT_MAPS["exp_avg"])
    optimizer.param_groups[0]["state_dtype"] = None
    optimizer.step()  # the codes decoded to fp32, then m = 0.9 m + 0.1 * 0
    assert optimizer.state[p]["exp_avg"].dtype == fp32 and "exp_avg_absmax" not in optimizer.state[p]
    assert torch.equal(optimizer.state[p]["exp_avg"], decoded * torch.tensor(0.9, dtype=fp32))


def test_under_torch_compile_8bit_states_step_in_the_graph_with_the_same_bits():
    """The compiled step traces the custom op fusedadam::adam_step_ with the codes and absmaxes (no graph break at
    the step), and writes the bits the eager step writes."""
    (compiled_p, compiled), (eager_p, eager) = _twins()
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    step = torch.compile(compiled.step)
    for _ in range(2):
        compiled_p.grad = torch.randn_like(compiled_p)
        eager_p.grad = compiled_p.grad.clone()
        step()
        eager.step()
    breaks = "\n".join(torch._dynamo.utils.counters["graph_break"])
    assert "adam_step" not in breaks and "_step_eagerly" not in breaks and "TensorTable" not in breaks, breaks
    assert torch._dynamo.utils.counters["stats"]["calls_captured"] > 0
    assert torch.equal(compiled_p, eager_p)
    for key, value in eager.state[eager_p].items():
        assert torch.equal(compiled.state[compiled_p][key], value), key


def test_the_native_step_refuses_a_table_of_8bit_moments_without_an_absmax():
    """The kernel reads one absmax per block: a table built without one (address 0) is refused before any counter
    or code moves, whatever built it."""
    from fusedadam._native import native

    n = 300
    p, g, step = torch.randn(n), torch.randn(n), torch.zeros(1)
    exp_avg, exp_avg_sq, absmax = (torch.zeros(n, dtype=torch.uint8), torch.zeros(n, dtype=torch.uint8),
                                   torch.zeros(2))
    table = native().TensorTable(
        dtype=0, state_dtype=4, param_update=0, step_is_double=False, numels=[n], params=[p.data_ptr()],
        exp_avgs=[exp_avg.data_ptr()], exp_avg_sqs=[exp_avg_sq.data_ptr()], max_exp_avg_sqs=[], masters=[],
        compensations=[], exp_avg_absmaxes=[absmax.data_ptr()], exp_avg_sq_absmaxes=[0], max_exp_avg_sq_absmaxes=[],
        salts=[0], steps=[step.data_ptr()], param_objects=[p], param_shapes=[tuple(p.shape)],
        param_strides=[p.stride()], param_contiguous=[True], torch_dtype=torch.float32, strided_layout=torch.strided,
        tensor_base=torch._C.TensorBase)
    table.set_grads([g.data_ptr()])
    with pytest.raises(ValueError, match="8-bit moments need every moment's absmax"):
        native().adam_step_cpu(table, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0, False, False, 0, 1)
    assert step.item() == 0 and not exp_avg.any() and not exp_avg_sq.any()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("backend, expected", [("auto", "triton"), ("cuda", "cuda")])
def test_on_a_gpu_8bit_moments_step_like_the_cpu_kernel(backend, expected):
    """backend='auto' takes the Triton kernel for 8-bit moments on a GPU (backends.EIGHT_BIT_AUTO_ORDER: the CUDA
    kernel's speed there is not measured yet); each GPU kernel writes the CPU kernel's codes but for a few on rounding
    boundaries (the GPU contracts multiply-adds)."""
    p = torch.randn(SMALLEST_QUANTIZED * 5 + 77)
    q = p.cuda()
    on_gpu = FusedAdamW([q], lr=0.01, state_dtype="8bit", amsgrad=True, backend=backend)
    on_cpu = FusedAdamW([p], lr=0.01, state_dtype="8bit", amsgrad=True, backend="cpu")
    assert on_gpu.backends == [{(str(q.device), fp32): expected}]
    for _ in range(3):
        p.grad = torch.randn_like(p)
        q.grad = p.grad.cuda()
        on_gpu.step()
        on_cpu.step()
    assert torch.allclose(q.cpu(), p, rtol=0, atol=1e-6)
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        ours, theirs = on_gpu.state[q], on_cpu.state[p]
        assert (ours[key].cpu() == theirs[key]).double().mean() >= EXACT_CODES, key
        absmax = ABSMAX_KEYS[key]
        assert torch.allclose(ours[absmax].cpu(), theirs[absmax], rtol=1e-6, atol=0), key
