"""Property-based: for any list of shapes and any valid hyperparameters, the CPU kernel stays within
tolerance of the float64 reference on the parameter and every state tensor."""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fusedadam.reference import AdamConfig
from harness import (assert_close_to_reference, make_problem, operand_scales, reference_tensors, run_fusedadam,
                     run_reference, tensors_of)

shapes = st.lists(st.one_of(st.tuples(st.integers(0, 300)),
                            st.tuples(st.integers(1, 40), st.integers(1, 40)),
                            st.tuples(st.integers(30_000, 80_000))), min_size=1, max_size=6)

configs = st.builds(
    AdamConfig,
    lr=st.floats(1e-5, 0.3),
    betas=st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.9999)),
    eps=st.sampled_from([1e-8, 1e-6, 1e-3]),
    weight_decay=st.sampled_from([0.0, 1e-4, 0.1]),
    amsgrad=st.booleans(),
    maximize=st.booleans(),
    decoupled_weight_decay=st.booleans(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=shapes, cfg=configs, steps=st.integers(1, 5), dtype=st.sampled_from([torch.float32, torch.float64]),
       seed=st.integers(0, 2**31 - 1))
def test_cpu_kernel_matches_reference(shapes, cfg, steps, dtype, seed):
    problem = make_problem(shapes, dtype, steps=steps, seed=seed)
    params, states = run_fusedadam(problem, cfg, "cpu")
    reference = run_reference(problem, cfg)
    assert_close_to_reference(tensors_of(params, states, cfg), reference_tensors(reference, cfg), dtype,
                              operand_scales(problem, cfg))
