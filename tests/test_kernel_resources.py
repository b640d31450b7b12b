"""The compiled CUDA kernels, checked without a GPU: every instantiation is built for every configured architecture,
none spills or uses local memory, each leaves room for at least 4 resident blocks of 256 threads per SM (half of an
sm_80 / sm_90 SM; 2 for the kernels of 8-bit moments), and on its aligned path every array moves in as many 128-bit
accesses as its pack holds (fusedadam/kernel_resources.py reads ptxas's report and the SASS)."""
import itertools

import pytest

from fusedadam._native import native
from fusedadam.kernel_resources import find_cuobjdump, kernel_table

C = native()
pytestmark = [
    pytest.mark.skipif(not C.has_cuda, reason="built without CUDA (FUSEDADAM_NO_CUDA=1 or no nvcc)"),
    pytest.mark.skipif(C.has_cuda and not any(a.startswith("sm_") for a in C.cuda_compiled_archs().split()),
                       reason="built as PTX only (FUSEDADAM_CUDA_DEVICE_CODE=unoptimized-ptx): no cubin, no ptxas report"),
]

# csrc/adam_modes.h dispatch_precision: (parameter, state, update).
PRECISIONS = [("fp32", "fp32", "nearest"), ("fp64", "fp64", "nearest"), ("fp16", "fp16", "nearest"),
              ("bf16", "bf16", "nearest"), ("fp32", "bf16", "nearest"), ("fp16", "fp32", "nearest"),
              ("fp16", "bf16", "nearest"), ("bf16", "fp32", "nearest"), ("fp16", "fp32", "master"),
              ("fp16", "bf16", "master"), ("bf16", "fp32", "master"), ("bf16", "bf16", "master"),
              ("bf16", "bf16", "stochastic"), ("bf16", "fp32", "stochastic"), ("bf16", "bf16", "kahan"),
              ("bf16", "fp32", "kahan"),
              ("fp32", "8bit", "nearest"), ("fp16", "8bit", "nearest"), ("bf16", "8bit", "nearest"),
              ("fp16", "8bit", "master"), ("bf16", "8bit", "master"), ("bf16", "8bit", "stochastic"),
              ("bf16", "8bit", "kahan")]
MODES = list(itertools.product(("none", "l2", "decoupled"), (False, True), (False, True)))
SIZE = {"fp32": 4, "fp64": 8, "fp16": 2, "bf16": 2}


def adam_kernels(with_sass=False):
    return [k for k in kernel_table(with_sass) if k.instance]


def built_archs():
    return sorted(int(a[3:]) for a in C.cuda_compiled_archs().split() if a.startswith("sm_"))


def test_every_storage_combination_and_mode_is_built_for_every_arch():
    built = {(k.arch, k.instance["param"], k.instance["state"], k.instance["update"], k.instance["weight_decay"],
              k.instance["amsgrad"], k.instance["maximize"]) for k in adam_kernels()}
    expected = {(arch, *precision, *mode) for arch in built_archs() for precision in PRECISIONS for mode in MODES}
    assert built == expected


# The resident 256-thread blocks per SM each architecture's kernels must allow (csrc/cuda/persistent_launch.cuh); the
# kernels of 8-bit moments ask for 2 everywhere (adam_kernel_8bit.cuh: a lane keeps 8 elements' moments in registers).
MIN_BLOCKS = {75: 3, 80: 4, 86: 4, 89: 4, 90: 4, 100: 2, 103: 2, 110: 2, 120: 2, 121: 2}
EIGHT_BIT_MIN_BLOCKS = 2


def test_no_kernel_spills_or_uses_local_memory_and_half_an_sm_stays_resident():
    """On sm_80 and sm_90 every kernel leaves 4 blocks of 256 threads resident (50% occupancy), those of 8-bit moments
    2 (25%); on the other architectures the minimum its launch bounds ask for."""
    kernels = adam_kernels()
    assert kernels
    for k in kernels:
        assert k.stack_bytes == 0 and k.spill_store_bytes == 0 and k.spill_load_bytes == 0, (k.arch, k.name)
        eight_bit = k.instance["state"] == "8bit"
        assert k.blocks_per_sm >= (EIGHT_BIT_MIN_BLOCKS if eight_bit else MIN_BLOCKS.get(k.arch, 4)), \
            (k.arch, k.name, k.registers)
        if k.arch in (80, 90):
            assert k.occupancy >= (0.25 if eight_bit else 0.5), (k.arch, k.name, k.registers)


def expected_wide_accesses(instance: dict) -> tuple[int, int]:
    """128-bit loads and stores of one pack step: each array moves pack x itemsize bytes, in 16-byte accesses when
    that is a multiple of 16 (adam_kernel.cuh: kVec elements, 4 beside AMSGrad with Kahan or stochastic rounding).
    With 8-bit moments, a lane's runs over one block (adam_kernel_8bit.cuh: 16 bytes of the parameter each, 2 runs
    of fp32 or 1 of 16-bit elements, 2 of 4 beside Kahan and AMSGrad); the codes move in 4- or 8-byte accesses."""
    update, amsgrad = instance["update"], instance["amsgrad"]
    kahan, master = update == "kahan", update == "master"
    if instance["state"] == "8bit":
        param = SIZE[instance["param"]]
        run = 4 if amsgrad and kahan else 16 // param
        runs = 256 // (32 * run)
        extra = [4] * master + [2] * kahan
        reads, writes = [param] * (not master) + [param] + extra, [param, param] + extra
        return tuple(runs * sum(run * size // 16 for size in sizes if run * size % 16 == 0)
                     for sizes in (reads, writes))
    param, state = SIZE[instance["param"]], SIZE[instance["state"]]
    pack = 4 if amsgrad and update in ("kahan", "stochastic") else 16 // (2 if kahan else min(param, state))
    extra = [state] * amsgrad + [4] * master + [2] * kahan
    reads = [param] * (not master) + [param, state, state] + extra  # with master weights the master replaces p
    writes = [param, param, state, state] + extra  # p, the unscaled gradient (GradScaler), m, v, ...
    return tuple(sum(pack * size // 16 for size in sizes if pack * size % 16 == 0) for sizes in (reads, writes))


@pytest.mark.skipif(find_cuobjdump() is None, reason="no cuobjdump (CUDA toolkit or triton) to read the SASS")
def test_aligned_packs_move_in_128_bit_global_accesses():
    for k in adam_kernels(with_sass=True):
        assert k.accesses is not None, (k.arch, k.name)
        assert (k.accesses["load128"], k.accesses["store128"]) == expected_wide_accesses(k.instance), (k.arch, k.name)
