"""The catalog of plausible bugs that scripts/mutants.py injects, one at a time. Each names the file, the exact text it
replaces (which must occur once), the replacement, and the tests that must catch it. A mutant that survives is a
missing test, or an equivalent mutant explained in `why`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    id: str
    area: str
    file: str
    find: str
    replace: str
    why: str
    tests: tuple[str, ...]
    select: str | None = None  # pytest -k


# The CUDA kernel's device code, run by the host launcher (backend "cuda-host").
CUDA_HOST_TESTS = ("tests/test_cuda_kernel_on_host.py", "tests/test_correctness.py", "tests/test_grad_scaler.py",
                   "tests/test_precision_modes.py", "tests/test_storage_rounding.py", "tests/test_launch_table.py")
CUDA_HOST_SELECT = "cuda-host"
KERNEL = "csrc/cuda/adam_kernel.cuh"


def cuda(id, file, find, replace, why):
    return Mutant(id, "cuda", file, find, replace, why, CUDA_HOST_TESTS, CUDA_HOST_SELECT)


CATALOG = [
    cuda("cuda-pack-offset", KERNEL,
         "Pack<Param, kCount> g = load_pack<kCount>(a.grad + i, aligned.grad);",
         "Pack<Param, kCount> g = load_pack<kCount>(a.grad + i + (kCount > 1), aligned.grad && kCount == 1);",
         "a pack reads its gradients one element too far on"),
    cuda("cuda-tail-start", KERNEL,
         "for (int64_t i = packs_end + at.thread; i < end; i += at.threads) {",
         "for (int64_t i = packs_end + 1 + at.thread; i < end; i += at.threads) {",
         "the tail after the last pack starts one element late"),
    cuda("cuda-head-end", KERNEL,
         "for (int64_t i = first + at.thread; i < packs_begin; i += at.threads) {",
         "for (int64_t i = first + at.thread; i + 1 < packs_begin; i += at.threads) {",
         "the peeled head stops one element short"),
    cuda("cuda-coefficients-cached-per-thread", KERNEL,
         "if (step_count != coefficients_step) {",
         "if (coefficients_step < 0.0f) {",
         "the step's constants are computed once per thread, not again for a tensor at another step count"),
    cuda("cuda-rounding-key-per-thread", KERNEL,
         "if (kStochastic && tensor != rounding_key_of) {",
         "if (kStochastic && rounding_key_of < 0) {",
         "stochastic rounding keeps the first tensor's stream for every tensor of the block"),
    cuda("cuda-unscaled-grad-not-written", KERNEL,
         "if (step.unscale) store_pack(a.grad + i, g, aligned.grad);",
         "",
         "GradScaler's unscaled gradient is not written back"),
    cuda("cuda-found-inf-equals-one", KERNEL,
         "return args.found_inf != nullptr && read_only(args.found_inf) != 0.0f;",
         "return args.found_inf != nullptr && read_only(args.found_inf) > 1.0f;",
         "a found_inf of 1 (one device with an inf) steps, and advances the counters"),
    cuda("cuda-no-peel", KERNEL,
         "const int64_t head = first + peel(a, first);",
         "const int64_t head = first;",
         "no peel: arrays misaligned alike move element by element in every pack (values right, speed lost)"),
    cuda("cuda-device-lr-ignored", KERNEL,
         "return make_adam_coefficients<Opmath>(value(args.lr_on_device, args.lr),",
         "return make_adam_coefficients<Opmath>(args.lr,",
         "a tensor lr on the device is not read (the host passes 0 then)"),
    cuda("cuda-chunk-range-remainder", "csrc/cuda/multi_tensor_apply.cuh",
         "return ChunkRange{num_chunks * block / blocks, num_chunks * (block + 1) / blocks};",
         "return ChunkRange{num_chunks / blocks * block, num_chunks / blocks * (block + 1)};",
         "blocks split the chunks evenly and drop the remainder"),
    cuda("cuda-last-block-never", "csrc/cuda/execution.cuh",
         "const bool last = static_cast<int64_t>(before) == blocks - 1;",
         "const bool last = static_cast<int64_t>(before) == blocks;",
         "no block finds itself last: the step counters never advance"),
    cuda("cuda-epilogue-short", KERNEL,
         "for (int64_t i = at.thread; i < args.table.num_tensors; i += at.threads) args.steps[i] += 1.0f;",
         "for (int64_t i = at.thread; i + 1 < args.table.num_tensors; i += at.threads) args.steps[i] += 1.0f;",
         "the last tensor's step counter is not advanced"),
    Mutant("triton-no-barrier-before-atomic", "triton", "fusedadam/triton_kernels/multi_tensor_adam.py",
           "        tl.debug_barrier()\n        finished_before = tl.atomic_add(", "        finished_before = tl.atomic_add(",
           "other warps of the last program may still read step counters the epilogue advances (only the compiled "
           "PTX shows it: the interpreter runs a program as one thread). Killed under Triton 3.6 (CI's compatibility "
           "job); equivalent under Triton 3.9, whose lowering of a scalar atomic adds a bar.sync of its own",
           ("tests/test_triton_compiles.py",)),
]
