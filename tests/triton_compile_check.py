"""Compiles the Triton kernel for NVIDIA targets without a GPU (run by test_triton_compiles.py in a process
without TRITON_INTERPRET, which would turn @triton.jit into the interpreter). Prints one JSON line per
variant: the arch, the count of 16-byte global loads and stores and of approximate math instructions, whether a
barrier precedes the completion counter's atomic, and the compiled kernel's registers and memory."""
import itertools
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from fusedadam.backends.triton_backend import GPU_CHUNK_SIZE, NUM_WARPS, gpu_block
from fusedadam.triton_kernels.multi_tensor_adam import multi_tensor_adam_kernel as kernel

POINTERS = {"table": "*i64", "steps": "*fp32", "done_counter": "*i32", "lr_pointer": "*fp32", "beta1_pointer": "*fp32",
            "beta2_pointer": "*fp32", "grad_scale": "*fp32", "found_inf": "*fp32"}
INTEGERS = ("num_tensors", "num_chunks", "lr_bits", "beta1_bits", "beta2_bits", "weight_decay_bits", "seed_low",
            "seed_high")
NEAREST, MASTER, STOCHASTIC, KAHAN = range(4)  # csrc/param_update.h ParamUpdate
SIZES = {tl.float32: 4, tl.float16: 2, tl.bfloat16: 2, tl.uint8: 1}


def variants():
    """Every storage dtype with every mode flag on in one variant and off in another; then every parameter update
    (precision.py), with everything on."""
    def variant(param, state, update, everything):
        block = gpu_block(SIZES[param], SIZES[state], update == MASTER)
        return dict(PARAM_DTYPE=param, STATE_DTYPE=state, UPDATE=update, CHUNK_SIZE=GPU_CHUNK_SIZE, BLOCK=block,
                    ALIGNED=True, WEIGHT_DECAY=2 if everything else 1, AMSGRAD=everything, MAXIMIZE=everything,
                    LR_ON_DEVICE=everything, BETA1_ON_DEVICE=everything, BETA2_ON_DEVICE=everything,
                    GRAD_SCALE=everything, FOUND_INF=everything, PARAM_BITS=False, STATE_BITS=False,
                    QUANTIZED=state == tl.uint8)
    for storage, everything in itertools.product((tl.float32, tl.float16, tl.bfloat16), (False, True)):
        yield variant(storage, storage, NEAREST, everything)
    yield variant(tl.float32, tl.bfloat16, NEAREST, True)
    yield variant(tl.bfloat16, tl.float32, MASTER, True)
    yield variant(tl.float16, tl.bfloat16, MASTER, True)
    yield variant(tl.bfloat16, tl.bfloat16, STOCHASTIC, True)
    yield variant(tl.bfloat16, tl.bfloat16, KAHAN, True)
    # 8-bit moments (state_dtype="8bit"): codes and block absmaxes.
    for everything in (False, True):
        yield variant(tl.float32, tl.uint8, NEAREST, everything)
    yield variant(tl.bfloat16, tl.uint8, MASTER, True)
    yield variant(tl.bfloat16, tl.uint8, STOCHASTIC, True)
    yield variant(tl.bfloat16, tl.uint8, KAHAN, True)


def innermost_loop_stack_accesses(sass: str) -> int:
    """Stack loads and stores (STL / LDL) inside the innermost loops of the SASS: a loop is a branch back to an earlier
    address, innermost when no other loop lies inside it. The element loop (a chunk's pieces) is one of those; a slot
    stored and reloaded once per chunk, outside it, costs nothing that matters."""
    instructions = [(int(address, 16), text) for address, text in re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", sass)]
    loops = [(int(target, 16), address) for address, text in instructions
             for target in re.findall(r"\bBRA\s+(?:`?\(?!?U?P\d+\)?,\s*)?(0x[0-9a-f]+)", text) if int(target, 16) < address]
    innermost = [(a, b) for a, b in loops if not any((c, d) != (a, b) and a <= c and d <= b for c, d in loops)]
    return sum(1 for address, text in instructions if re.search(r"\b(STL|LDL)\b", text)
               and any(a <= address <= b for a, b in innermost))


def resources(cubin: bytes) -> dict:
    """Registers, stack and local memory per thread, and shared memory per program, of the compiled kernel
    (`cuobjdump -res-usage`, Triton's own), and its stack accesses inside innermost loops (`cuobjdump -sass`)."""
    cuobjdump = str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kernel.cubin"
        path.write_bytes(cubin)
        done = subprocess.run([cuobjdump, "-res-usage", str(path)], capture_output=True, text=True, check=True)
        sass = subprocess.run([cuobjdump, "-sass", str(path)], capture_output=True, text=True, check=True).stdout
    usage = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", done.stdout))
    return {"registers": int(usage["REG"]), "stack_bytes": int(usage["STACK"]), "local_bytes": int(usage["LOCAL"]),
            "shared_bytes": int(usage["SHARED"]), "loop_stack_accesses": innermost_loop_stack_accesses(sass)}


def main(archs):
    for arch, constexprs in itertools.product(archs, variants()):
        signature = {name: "constexpr" if name in constexprs else POINTERS.get(name, "i64" if name in INTEGERS
                                                                                else "fp32")
                     for name in kernel.arg_names}
        compiled = triton.compile(ASTSource(kernel, signature, constexprs=constexprs),
                                  target=GPUTarget("cuda", arch, 32),
                                  options={"enable_fp_fusion": True, "num_warps": NUM_WARPS})
        ptx = compiled.asm["ptx"]
        barrier, atomic = ptx.find("bar.sync"), ptx.find("atom.")
        print(json.dumps({"arch": arch, "param": str(constexprs["PARAM_DTYPE"]),
                          "state": str(constexprs["STATE_DTYPE"]),
                          "update": constexprs["UPDATE"], "amsgrad": constexprs["AMSGRAD"],
                          "cubin_bytes": len(compiled.asm["cubin"]),
                          "vector_loads": len(re.findall(r"ld\.global[.\w]*\.v[24]", ptx)),
                          "vector_stores": len(re.findall(r"st\.global[.\w]*\.v[24]", ptx)),
                          "vector16_loads": len(re.findall(r"ld\.global[.\w]*\.v4", ptx)),
                          "approximate_math": len(re.findall(r"\.approx(?:\.ftz)?\.f32", ptx)),
                          "barrier_before_atomic": 0 <= barrier < atomic,
                          **resources(compiled.asm["cubin"])}), flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]])
