"""Every backend x storage dtype x mode x shape class, over several steps, against the float64 reference
(fusedadam.reference, Algorithm 1) on the parameter AND every state tensor, and the step counter.

Parameters and states are updated in place, so an element a kernel forgets to write keeps its old value
and fails the comparison: the inputs themselves are the poison."""
import pytest
import torch

from harness import (assert_as_accurate_as_torch, assert_close_to_reference, make_problem, operand_scales,
                     reference_tensors, run_fusedadam, run_fusedadam_against_emulation, run_reference, run_torch,
                     tensors_of)
from fusedadam.reference import AdamConfig
from specs import DTYPES, MODES, backend_dtype_params, backend_params, mode_shape_params, require


@pytest.mark.parametrize("mode, shapes", mode_shape_params())
@pytest.mark.parametrize("backend, dtype", backend_dtype_params(DTYPES))
def test_matches_reference(backend, dtype, mode, shapes):
    require(backend)
    problem = make_problem(backend.fit(shapes), dtype, backend.device)
    reference = reference_tensors(run_reference(problem, mode), mode)
    if dtype in (torch.float16, torch.bfloat16):
        params, states = run_fusedadam_against_emulation(problem, mode, backend.name)
        # And where torch is the subject, against its fused kernel (fp32 math on 16-bit storage, its most accurate).
        assert_as_accurate_as_torch(tensors_of(params, states, mode), reference,
                                    tensors_of(*run_torch(problem, mode, fused=True), mode), dtype)
    else:
        params, states = run_fusedadam(problem, mode, backend.name)
        assert_close_to_reference(tensors_of(params, states, mode), reference, dtype, operand_scales(problem, mode))
    for p, s in zip(params, states):
        assert p.dtype == dtype and p.device.type == backend.device
        assert s["step"].dtype == torch.float32 and s["step"].item() == len(problem.grads)
        for key in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if mode.amsgrad else ()):
            assert s[key].dtype == dtype and s[key].shape == p.shape


@pytest.mark.parametrize("backend, dtype", backend_dtype_params({"fp32": torch.float32, "bf16": torch.bfloat16}))
def test_lr_and_betas_as_tensors(backend, dtype):
    """lr and betas may be tensors (torch.optim.Adam allows it); their values are the tensors' values, so the
    reference runs with the float32-rounded numbers."""
    require(backend)
    lr, beta1, beta2 = torch.tensor(0.01), torch.tensor(0.9), torch.tensor(0.999)
    as_tensors = AdamConfig(lr=lr, betas=(beta1, beta2), weight_decay=0.1, decoupled_weight_decay=True)
    as_floats = AdamConfig(lr=lr.item(), betas=(beta1.item(), beta2.item()), weight_decay=0.1,
                           decoupled_weight_decay=True)
    problem = make_problem([(1290,), (30, 50)], dtype, backend.device)
    if dtype == torch.float32:
        params, states = run_fusedadam(problem, as_tensors, backend.name)
        assert_close_to_reference(tensors_of(params, states, as_floats),
                                  reference_tensors(run_reference(problem, as_floats), as_floats), dtype,
                                  operand_scales(problem, as_floats))
    else:
        run_fusedadam_against_emulation(problem, as_floats, backend.name, as_tensors)


@pytest.mark.parametrize("backend", backend_params())
def test_agrees_with_torch_adam_in_fp32(backend):
    """Same inputs, same numbers as torch.optim.Adam: within a few fp32 rounding errors."""
    require(backend)
    for mode in MODES.values():
        problem = make_problem([(1000,), (31, 7)], torch.float32, backend.device)
        ours = tensors_of(*run_fusedadam(problem, mode, backend.name), mode)
        theirs = tensors_of(*run_torch(problem, mode), mode)
        for mine, torch_ in zip(ours, theirs):
            for key in mine:
                torch.testing.assert_close(mine[key], torch_[key], rtol=2e-6, atol=1e-7)
