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
    also: tuple[tuple[str, str, str], ...] = ()  # more (file, find, replace) edits of the same slip elsewhere
    # Why no test can tell this mutant from the original (the compiler already does what the edit removes): a
    # survivor with a reason is reported as equivalent. If it is ever killed, the reason has stopped holding.
    equivalent: str = ""
    # The CPU kernel variant (csrc/cpu/cpu_isa.h) the edited code runs in: on a CPU that cannot run it, no test could
    # kill the mutant, so it is left out (reported "not-here") rather than counted.
    cpu_isa: str = ""

    @property
    def edits(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.file, self.find, self.replace), *self.also)


# The CUDA kernel's device code, run by the host launcher (backend "cuda-host").
CUDA_HOST_TESTS = ("tests/test_cuda_kernel_on_host.py", "tests/test_correctness.py", "tests/test_grad_scaler.py",
                   "tests/test_precision_modes.py", "tests/test_storage_rounding.py", "tests/test_launch_table.py")
CUDA_HOST_SELECT = "cuda-host"
KERNEL = "csrc/cuda/adam_kernel.cuh"
# The kernel of 8-bit moments, and the tests that run it on the host.
EIGHT_BIT_KERNEL = "csrc/cuda/adam_kernel_8bit.cuh"
CUDA_HOST_EIGHT_BIT_TESTS = ("tests/test_cuda_kernel_8bit_on_host.py", "tests/test_eight_bit_states.py")


def cuda(id, file, find, replace, why):
    return Mutant(id, "cuda", file, find, replace, why, CUDA_HOST_TESTS, CUDA_HOST_SELECT)


def cuda_eight_bit(id, find, replace, why):
    return Mutant(id, "cuda", EIGHT_BIT_KERNEL, find, replace, why, CUDA_HOST_EIGHT_BIT_TESTS, CUDA_HOST_SELECT)


CATALOG = [
    cuda("cuda-pack-offset", KERNEL,
         "grad = load_pack<kCount>(a.grad + i, aligned.grad);",
         "grad = load_pack<kCount>(a.grad + i + (kCount > 1), aligned.grad && kCount == 1);",
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
         "if (unscaled) store_pack(a.grad + i, grad, aligned.grad);",
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
    cuda_eight_bit("cuda-eight-bit-absmax-not-exchanged",
                   "const float v_absmax = float_of_bits(warp_max(v_bits));",
                   "const float v_absmax = float_of_bits(v_bits[0]);",
                   "a block's second moments are scaled by one lane's largest, not the warp's"),
    cuda_eight_bit("cuda-eight-bit-short-block-overrun",
                   "        if (start + k < n) {\n          at.count(Tally::kScalarElements);",
                   "        if (start + k <= n) {\n          at.count(Tally::kScalarElements);",
                   "a short last block steps one element past the tensor's end"),
    cuda_eight_bit("cuda-eight-bit-short-block-dropped",
                   "const int64_t end_block = (end + kBlock - 1) / kBlock;",
                   "const int64_t end_block = end / kBlock;",
                   "a chunk's blocks stop at its last whole one: a tensor's short last block is never stepped"),
    cuda_eight_bit("cuda-eight-bit-every-warp-every-block",
                   "block < end_block; block += warps) {",
                   "block < end_block; block += 1) {",
                   "each warp steps every block of the chunk from its first on: blocks stepped several times"),
    cuda_eight_bit("cuda-eight-bit-vmax-signed-map",
                   "vmax[k] = kAmsgrad ? decode<UnsignedMap>(vmax_codes.values[k], inverse_scale[2]) : 0.0f;",
                   "vmax[k] = kAmsgrad ? decode<SignedMap>(vmax_codes.values[k], inverse_scale[2]) : 0.0f;",
                   "AMSGrad's running maximum is decoded on exp_avg's signed map"),
    Mutant("triton-no-barrier-before-atomic", "triton", "fusedadam/triton_kernels/multi_tensor_adam.py",
           "        tl.debug_barrier()\n        finished_before = tl.atomic_add(", "        finished_before = tl.atomic_add(",
           "other warps of the last program may still read step counters the epilogue advances (only the compiled "
           "PTX shows it: the interpreter runs a program as one thread)",
           ("tests/test_triton_compiles.py",),
           equivalent="Triton 3.6 and 3.9 both lower a scalar atomic behind a bar.sync of their own: the mutant's PTX "
                      "has the barrier before the atomic all the same (3.6: identical PTX), so no test can tell. The "
                      "explicit barrier stays, since Triton does not promise its own"),

    # ------------------------------------------------------------------------------------------- the shared math
    Mutant("math-maximize-after-l2", "math", "csrc/adam_math.h",
           "  if (kMaximize) grad = -grad;\n  if (kWeightDecay == WeightDecay::kL2) grad = grad + c.weight_decay * param;",
           "  if (kWeightDecay == WeightDecay::kL2) grad = grad + c.weight_decay * param;\n  if (kMaximize) grad = -grad;",
           "maximize negates the gradient after L2 decay was added, written alike in the C++ math, the Triton math "
           "and the float64 reference, so the reference tests cannot see it",
           ("tests/test_torch_parity.py",), "l2-maximize and (cpu-cpu or cuda-host or triton)",
           also=(("fusedadam/triton_kernels/adam_math.py",
                  "    if MAXIMIZE:\n        grad = -grad\n    if WEIGHT_DECAY == WEIGHT_DECAY_L2:\n"
                  "        grad = grad + weight_decay * param\n",
                  "    if WEIGHT_DECAY == WEIGHT_DECAY_L2:\n        grad = grad + weight_decay * param\n"
                  "    if MAXIMIZE:\n        grad = -grad\n"),
                 ("fusedadam/reference.py",
                  "    if cfg.maximize:\n        g = -g\n    if wd != 0:\n        if cfg.decoupled_weight_decay:\n"
                  "            s.param.mul_(1 - lr * wd)\n        else:\n            g = g + wd * s.param\n",
                  "    if wd != 0:\n        if cfg.decoupled_weight_decay:\n            s.param.mul_(1 - lr * wd)\n"
                  "        else:\n            g = g + wd * s.param\n    if cfg.maximize:\n        g = -g\n"))),
    Mutant("math-max-drops-nan", "math", "csrc/adam_math.h",
           "const bool take_b = (b > a) | (b != b);", "const bool take_b = (b > a);",
           "AMSGrad's maximum drops a NaN (as std::max does): max_exp_avg_sq stays finite where torch's is NaN",
           ("tests/test_torch_parity.py",), "nan and amsgrad and (cpu-cpu or cuda-host)"),
    Mutant("triton-max-drops-nan", "triton", "fusedadam/triton_kernels/adam_math.py",
           "return tl.where((b > a) | (b != b), b, a)", "return tl.maximum(a, b)",
           "the Triton kernel's AMSGrad maximum drops a NaN (tl.maximum)",
           ("tests/test_torch_parity.py",), "nan and amsgrad and triton"),
    Mutant("math-eps-before-bias-correction", "math", "csrc/adam_math.h",
           "const Opmath denom = corrected_root + c.eps;",
           "const Opmath denom = (std::sqrt(second_moment) + c.eps) / c.bias_correction2_sqrt;",
           "eps added before the bias correction of the square root (the paper's eps-hat, not torch's placement)",
           ("tests/test_correctness.py",), "cpu-cpu and other-betas-eps"),
    Mutant("math-step-division-uncorrected", "math", "csrc/adam_math.h",
           "return std::isfinite(quotient) ? corrected : quotient;", "return quotient;",
           "sqrt(v) / sqrt(1 - beta2^t) as a multiplication by the rounded reciprocal, without Markstein's "
           "correction: within an ulp, so every tolerance test passes it",
           ("tests/test_ieee_arithmetic.py",), "cpu-cpu-fp32 or cpu-cpu-fp64"),
    Mutant("math-step-division-infinity-unguarded", "math", "csrc/adam_math.h",
           "return std::isfinite(quotient) ? corrected : quotient;", "return corrected;",
           "the corrected quotient kept when the quotient is infinite: an exp_avg_sq that overflowed makes the "
           "denominator NaN (inf - inf in the remainder) where IEEE's is inf, and the update NaN where it is 0",
           ("tests/test_ieee_arithmetic.py",), "cpu-cpu-fp32"),
    Mutant("math-decay-factor-without-lr", "math", "csrc/adam_math.h",
           "c.decay_factor = static_cast<Opmath>(1.0 - lr * weight_decay);",
           "c.decay_factor = static_cast<Opmath>(1.0 - weight_decay);",
           "AdamW's decoupled decay not scaled by lr",
           ("tests/test_correctness.py",), "cpu-cpu and adamw"),
    Mutant("math-bias-correction-one-step-late", "math", "csrc/adam_math.h",
           "const double bias_correction1 = 1.0 - std::exp2(step * std::log2(beta1));",
           "const double bias_correction1 = 1.0 - std::exp2((step + 1.0) * std::log2(beta1));",
           "the first moment's bias correction uses the next step's count",
           ("tests/test_correctness.py",), "cpu-cpu and fp32 and adam-odd"),
    Mutant("reference-amsgrad-on-corrected", "reference", "fusedadam/reference.py",
           "        torch.maximum(s.max_exp_avg_sq, s.exp_avg_sq, out=s.max_exp_avg_sq)",
           "        torch.maximum(s.max_exp_avg_sq, s.exp_avg_sq / (1 - beta2 ** t), out=s.max_exp_avg_sq)",
           "the float64 reference keeps the maximum of the bias-corrected estimate (a paper variant, not torch's): "
           "the reference is checked against torch itself",
           ("tests/test_reference.py",)),
    # ------------------------------------------------------------------------------------------------ CPU kernel
    Mutant("cpu-stochastic-bits-by-slice", "cpu", "csrc/cpu/adam_span.h",
           "c, rounding_key, first_index + at);", "c, rounding_key, at);",
           "stochastic rounding's bits indexed by the element's place in a thread's slice, not in its tensor",
           ("tests/test_thread_independence.py",), "stochastic",
           also=(("csrc/cpu/adam_span.h", "c, rounding_key, first_index + grouped);",
                  "c, rounding_key, grouped);"),)),
    Mutant("cpu-group-moment-not-stored", "cpu", "csrc/cpu/adam_span.h",
           "      store_group(group_m, exp_avg + at);\n", "",
           "a group's 16-bit exp_avg is never rounded back: only the last n % 32 elements' first moments move",
           ("tests/test_correctness.py", "tests/test_precision_modes.py"), "cpu-cpu and (bf16 or fp16) and adam"),
    Mutant("cpu-bf16-narrow-flushes-subnormals", "cpu", "csrc/cpu/group_cast.h",
           "if (__builtin_expect((low_subnormal | high_subnormal) == 0, 1)) {", "if (true) {",
           "bf16 rounded by vcvtne2ps2bf16 alone, which reads fp32 subnormals as zero: results below 2^-126 are "
           "flushed where torch keeps them as bf16 subnormals",
           ("tests/test_storage_rounding.py",), "cpu-cpu", cpu_isa="avx512-bf16"),
    Mutant("cpu-fp16-narrow-truncates", "cpu", "csrc/cpu/group_cast.h",
           "_mm512_cvtps_ph(_mm512_load_ps(src + i), _MM_FROUND_TO_NEAREST_INT",
           "_mm512_cvtps_ph(_mm512_load_ps(src + i), _MM_FROUND_TO_ZERO",
           "fp16 rounded toward zero by the AVX-512 conversion: every inexact result one ulp low half the time",
           ("tests/test_storage_rounding.py",), "cpu-cpu", cpu_isa="avx512-bf16"),
    Mutant("cpu-slice-boundary-unaligned", "cpu", "csrc/cpu/multi_tensor_cpu.h",
           "const int64_t stop = std::min(tensor_end, slice_end);",
           "const int64_t stop = std::min(tensor_end, slice_end - (slice_end < total));",
           "a thread's slice stops one element short of the next thread's: one element per boundary is never stepped",
           ("tests/test_correctness.py", "tests/test_thread_independence.py"), "(cpu-cpu and larger) or thread_count"),
    Mutant("launch-table-chunk-first", "cpu", "csrc/launch_table_writer.h",
           "      row[kFirstElement] = first;", "      row[kFirstElement] = first + (first > 0);",
           "every chunk after a tensor's first starts one element late in the launch table",
           ("tests/test_launch_table.py", "tests/test_correctness.py"), "launch or (cuda-host and larger)"),
    Mutant("launch-table-tensor-index-wraps", "cpu", "csrc/launch_table_writer.h",
           "      row[kTensorIndex] = static_cast<int64_t>(i);",
           "      row[kTensorIndex] = static_cast<int64_t>(i % 2048);",
           "from the 2049th tensor on, each tensor's chunks step the tensor 2048 before it: those are stepped twice, the"
           " rest never; only a table of more than 2048 tensors shows it, which is what the thousands shape class is for",
           ("tests/test_correctness.py",), "thousands and cuda-host"),
    Mutant("rounding-stochastic-15-bits", "precision", "csrc/param_update.h",
           "const uint32_t rounded = (bits + (random >> 16)) & 0xFFFF0000u;",
           "const uint32_t rounded = (bits + (random >> 17)) & 0xFFFF0000u;",
           "stochastic rounding adds 15 random bits instead of 16: biased toward zero",
           ("tests/test_precision_modes.py",), "stochastic and (cpu-cpu or cuda-host)"),
    Mutant("param-store-one-ulp-up", "precision", "csrc/param_update.h",
           "  } else {\n    return after;\n  }\n}",
           "  } else {\n    return after + std::fabs(after) * static_cast<Opmath>(1.1920928955078125e-07);\n  }\n}",
           "every stored parameter lands an ulp or two above the rounded result: in fp32 a drift of an ulp a step, "
           "which a single step's tolerance (and the 4-step reference comparison) cannot see",
           ("tests/test_drift.py",), "cpu-cpu and fp32"),
    Mutant("math-lr-one-percent-high", "math", "csrc/adam_math.h",
           "c.step_size = static_cast<Opmath>(lr / bias_correction1);",
           "c.step_size = static_cast<Opmath>(1.01 * lr / bias_correction1);",
           "every update 1% too large, seen by the tests of 16-bit parameters alone (a bound of twice torch's error "
           "against the float64 reference allowed it)",
           ("tests/test_correctness.py", "tests/test_precision_modes.py", "tests/test_drift.py"),
           "cpu-cpu and (bf16 or fp16) and not fp32"),
    Mutant("kahan-compensation-dropped", "precision", "csrc/param_update.h",
           "compensation = update - (stored - before);", "compensation = 0;",
           "Kahan summation never carries the rounding error to the next step",
           ("tests/test_precision_modes.py",), "kahan and (cpu-cpu or cuda-host)"),
    Mutant("triton-kahan-compensation-dropped", "triton", "fusedadam/triton_kernels/param_update.py",
           "        update = (after - before) + compensation\n", "        update = (after - before)\n",
           "the Triton kernel's Kahan update ignores the carried compensation",
           ("tests/test_precision_modes.py",), "kahan and triton"),
    Mutant("triton-one-chunk-per-program", "triton", "fusedadam/triton_kernels/multi_tensor_adam.py",
           "            chunk += 1\n", "            chunk = chunk_end\n",
           "a Triton program steps only the first chunk of its range (the interpreter's default grid, one program per "
           "chunk, cannot tell)",
           ("tests/test_triton_grid.py",)),
    Mutant("triton-eight-bit-vmax-decoded-from-v", "triton", "fusedadam/triton_kernels/multi_tensor_adam.py",
           "    if QUANTIZED:\n        if AMSGRAD:\n            vmax = decode_moment(vmax,",
           "    if QUANTIZED:\n        vmax = v\n        if AMSGRAD:\n            vmax = decode_moment(vmax,",
           "the Triton kernel decodes AMSGrad's 8-bit max_exp_avg_sq from exp_avg_sq's codes (this slip was made once)",
           ("tests/test_eight_bit_states.py",), "triton and amsgrad"),
    Mutant("triton-eight-bit-absmax-not-stored", "triton", "fusedadam/triton_kernels/multi_tensor_adam.py",
           "        tl.store(exp_avg_absmax + blocks, m_absmax, mask=block_mask)\n", "",
           "the Triton kernel re-encodes exp_avg with a new absmax but keeps the old one in the state",
           ("tests/test_eight_bit_states.py",), "each_step and triton"),
    Mutant("triton-eight-bit-rounds-half-up", "triton", "fusedadam/triton_kernels/moment_quantization.py",
           "(2 ** (DROP - 1) - 1) + ((bits >> DROP) & 1)", "(2 ** (DROP - 1))",
           "the Triton kernel's map rounds a tie between two normal codes up instead of to even",
           ("tests/test_quantization.py",), "kernels_maps and triton"),
    Mutant("triton-eight-bit-decode-subnormal-binade", "triton", "fusedadam/triton_kernels/moment_quantization.py",
           "((normal + 2 ** 23).to(tl.float32, bitcast=True)", "((normal + 2 ** 24).to(tl.float32, bitcast=True)",
           "the Triton kernel reads a subnormal code one binade too high",
           ("tests/test_quantization.py",), "kernels_maps and triton"),
    Mutant("triton-eight-bit-one-absmax-per-piece", "triton", "fusedadam/triton_kernels/moment_quantization.py",
           "    absmax = tl.max(magnitude_bits, axis=1).to(tl.float32, bitcast=True)",
           "    absmax = (tl.max(magnitude_bits, axis=1) * 0 + tl.max(tl.max(magnitude_bits, axis=1), axis=0)).to(\n"
           "        tl.float32, bitcast=True)",
           "the Triton kernel scales every block of a piece by the piece's largest element",
           ("tests/test_quantization.py", "tests/test_eight_bit_states.py"), "triton"),
    # ------------------------------------------------------------------------------------------- the Python layer
    Mutant("py-weight-decay-not-in-config-key", "python", "fusedadam/optimizer.py",
           '_CONFIG_KEYS = ("lr", "betas", "eps", "weight_decay", ',
           '_CONFIG_KEYS = ("lr", "betas", "eps", ',
           "a weight_decay changed between steps is ignored (the cached step config does not see it)",
           ("tests/test_torch_parity.py",), "hyperparameter and cpu-cpu"),
    Mutant("py-post-hooks-before-the-update", "python", "fusedadam/optimizer.py",
           "    out = step(*args, **kwargs)\n    self._optimizer_step_code()\n"
           "    for post_hook in chain(self._optimizer_step_post_hooks.values(),\n"
           "                           torch_optimizer._global_optimizer_post_hooks.values()):\n"
           "        post_hook(self, args, kwargs)\n",
           "    for post_hook in chain(self._optimizer_step_post_hooks.values(),\n"
           "                           torch_optimizer._global_optimizer_post_hooks.values()):\n"
           "        post_hook(self, args, kwargs)\n    out = step(*args, **kwargs)\n    self._optimizer_step_code()\n",
           "step post-hooks run before the update",
           ("tests/test_torch_parity.py", "tests/test_api.py"), "hook"),
    Mutant("py-found-inf-ignored-once-unscaled", "python", "fusedadam/backends/amp.py",
           "        if grad_scale is None and found_inf is None:\n            return None",
           "        if grad_scale is None:\n            return None",
           "after scaler.unscale_() (gradient clipping) the optimizer gets found_inf without a scale, and steps anyway",
           ("tests/test_grad_scaler.py",), "clipped and cpu-cpu"),
    Mutant("py-state-change-not-counted", "python", "fusedadam/state_table.py",
           "    def __setitem__(self, key, value):\n        super().__setitem__(key, value)\n        self._changed()",
           "    def __setitem__(self, key, value):\n        super().__setitem__(key, value)",
           "replacing a state entry (exp_avg after pruning, step for a warm restart) is not seen by the cached plan",
           ("tests/test_between_steps.py",), "cpu"),
    Mutant("py-torch-backend-trusts-shapes", "python", "fusedadam/backends/torch_fallback.py",
           "            if not (p.shape == g.shape == shape and p.dtype == g.dtype == dtype",
           "            if not (True or p.shape == g.shape == shape and p.dtype == g.dtype == dtype",
           "the torch backend's cached plan steps a parameter given another size (torch's fused CPU kernel then "
           "corrupts the heap)",
           ("tests/test_between_steps.py",), "torch and not data"),
    Mutant("py-state-shape-unchecked", "python", "fusedadam/validation.py",
           "        if value.shape != p.shape or value.device != p.device:",
           "        if value.device != p.device:",
           "a state tensor of another shape than its parameter reaches the kernels",
           ("tests/test_between_steps.py",), "exp_avg and 2"),
    Mutant("py-step-counter-shared-on-load", "python", "fusedadam/optimizer.py",
           '                self.state[p]["step"] = step.clone()', '                self.state[p]["step"] = step',
           "two optimizers loading one state_dict share its step tensors and advance each other's counts",
           ("tests/test_api.py",), "shares_no_step_counter"),
    Mutant("py-load-takes-the-checkpoints-backend", "python", "fusedadam/optimizer.py",
           '            group["backend"] = backend', '            pass',
           "a GPU run's checkpoint (backend 'cuda') makes a CPU optimizer refuse to step after loading it",
           ("tests/test_api.py",), "keeps_the_loading"),
    Mutant("native-param-address-unchecked", "native", "csrc/bindings.cpp",
           "    if (access.data_ptr(param) != reinterpret_cast<uintptr_t>(table.tensors[i].param)) "
           "return static_cast<long>(i);",
           "    (void)param;",
           "p.data = ... between steps: the cached table keeps stepping the old storage",
           ("tests/test_between_steps.py", "tests/test_layout.py"), "same or replaced"),
    # The 8-bit maps of the moments (issue 15): the Python module and the kernels' header, held to each other.
    Mutant("quant-rounds-half-up", "quantization", "csrc/moment_quantization.h",
           "(bits + ((1u << (kDrop - 1)) - 1) + ((bits >> kDrop) & 1u)) >> kDrop",
           "(bits + (1u << (kDrop - 1))) >> kDrop",
           "the native encoder rounds a tie up instead of to the even code",
           ("tests/test_quantization.py",), "native"),
    Mutant("quant-zero-block-scale", "quantization", "csrc/moment_quantization.h",
           "return absmax == 0.0f ? 0.0f : Map::kTop / absmax;", "return Map::kTop / absmax;",
           "an all-zero block is scaled by top / 0: 0 * inf makes every code the largest",
           ("tests/test_quantization.py",), "native"),
    Mutant("quant-subnormal-half-steps", "quantization", "csrc/moment_quantization.h",
           "float_of_bits((126u + Map::kBias + Map::kMantissaBits) << 23)",
           "float_of_bits((127u + Map::kBias + Map::kMantissaBits) << 23)",
           "the subnormal codes are counted in half steps: every code below the smallest normal is off",
           ("tests/test_quantization.py",), "kernels_maps",
           also=(("fusedadam/triton_kernels/moment_quantization.py", "((126 + BIAS + MANTISSA) << 23)",
                  "((127 + BIAS + MANTISSA) << 23)"),)),
    Mutant("quant-decode-subnormal-binade", "quantization", "csrc/moment_quantization.h",
           "float_of_bits(normal + (1u << 23))", "float_of_bits(normal + (2u << 23))",
           "a subnormal code is read one binade too high: every code below the smallest normal decodes 2x too large",
           ("tests/test_quantization.py",), "kernels_maps"),
    Mutant("quant-py-sign-dropped", "quantization", "fusedadam/quantization.py",
           "        magnitude = magnitude | torch.where(blocks < 0, 0x80, 0)", "        magnitude = magnitude",
           "exp_avg's codes lose their sign",
           ("tests/test_quantization.py",)),
    # 8-bit moments in the CPU kernel and the optimizer (issue 15).
    Mutant("eight-bit-one-absmax-per-span", "quantization", "csrc/cpu/adam_span.h",
           "    const int64_t block = at / kBlock;", "    const int64_t block = begin / kBlock;",
           "every block of a thread's span is decoded and encoded with the span's first absmax",
           ("tests/test_eight_bit_states.py",), "emulation"),
    Mutant("eight-bit-blocks-split-between-threads", "quantization", "csrc/cpu/adam_span.h",
           "parallel_for_each_span(table, max_threads, quantization::kBlock,",
           "parallel_for_each_span(table, max_threads, 1,",
           "thread slices may start inside a block: two threads each write its absmax, for their half of the codes",
           ("tests/test_thread_independence.py", "tests/test_eight_bit_states.py"), "8bit"),
    Mutant("eight-bit-absmax-unchecked", "quantization", "fusedadam/validation.py",
           "            _check_absmax(p, state, key, where)", "            pass",
           "a replaced absmax of another size is handed to the kernel, which reads one value per block",
           ("tests/test_eight_bit_states.py",), "replaced or tamper"),
    Mutant("eight-bit-small-tensors-quantized", "quantization", "fusedadam/precision.py",
           "CODES_DTYPE if numel >= SMALLEST_QUANTIZED else torch.float32", "CODES_DTYPE",
           "tensors under 4096 elements get 8-bit moments too",
           ("tests/test_eight_bit_states.py",), "emulation or bytes"),
    Mutant("eight-bit-logical-order", "quantization", "fusedadam/quantization.py",
           "    flat_codes, absmax = quantize(memory_order(x).float(), fmap)",
           "    flat_codes, absmax = quantize(x.reshape(-1).float(), fmap)",
           "a transposed moment is quantized in index order, its codes stored in memory order",
           ("tests/test_eight_bit_states.py",), "transposed"),
    Mutant("eight-bit-absmax-from-the-other-moment", "quantization", "csrc/cpu/adam_span.h",
           "    t.exp_avg_absmax[block] = block_absmax(m, n);", "    t.exp_avg_absmax[block] = block_absmax(v, n);",
           "exp_avg's block absmax taken from exp_avg_sq's values",
           ("tests/test_eight_bit_states.py",), "emulation"),
    Mutant("eight-bit-sharded-absmax-copied", "quantization", "fusedadam/backends/local_shards.py",
           "    return row.view(-1)[:blocks]", "    return row.view(-1)[:blocks].clone()",
           "the kernel gets a copy of a local shard's absmaxes: its new absmaxes never reach the state",
           ("tests/test_distributed.py",), "eight_bit"),
    Mutant("eight-bit-sharded-absmax-shape-per-rank", "quantization", "fusedadam/sharded_absmax.py",
           "            largest = -(-size // shards) * (p.numel() // size) if size else 0",
           "            largest = local_shard(p).numel()",
           "each rank sizes the absmax DTensor from its own shard: the ranks disagree on its global shape",
           ("tests/test_distributed.py",), "eight_bit"),
    Mutant("eight-bit-codes-read-as-numbers", "quantization", "fusedadam/optimizer.py",
           "        value = dequantize_moment_of(value, state[absmax_key], fmap)  # another layout or another storage",
           "        value = value.float()",
           "8-bit codes converted to fp32 moments as if they were values, when the options change",
           ("tests/test_eight_bit_states.py",), "converts"),
]

