"""Compiles the Triton kernel for NVIDIA targets without a GPU (run by test_triton_compiles.py in a process
without TRITON_INTERPRET, which would turn @triton.jit into the interpreter). Prints one JSON line per
variant: the arch, and the count of 16-byte global loads and stores and of approximate math instructions."""
import itertools
import json
import re
import sys

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from fusedadam.backends.triton_backend import GPU_BLOCK, GPU_CHUNK_SIZE
from fusedadam.triton_kernels.multi_tensor_adam import multi_tensor_adam_kernel as kernel

POINTERS = {"table": "*i64", "steps": "*fp32", "done_counter": "*i32", "lr_pointer": "*fp32", "grad_scale": "*fp32",
            "found_inf": "*fp32"}
INTEGERS = ("num_tensors", "num_chunks", "seed_low", "seed_high")
NEAREST, MASTER, STOCHASTIC, KAHAN = range(4)  # csrc/param_update.h ParamUpdate


def variants():
    """Every storage dtype with every mode flag on in one variant and off in another; then every parameter update
    (precision.py), with everything on."""
    def variant(param, state, update, everything):
        return dict(PARAM_DTYPE=param, STATE_DTYPE=state, UPDATE=update, CHUNK_SIZE=GPU_CHUNK_SIZE, BLOCK=GPU_BLOCK,
                    ALIGNED=True, WEIGHT_DECAY=2 if everything else 1, AMSGRAD=everything, MAXIMIZE=everything,
                    LR_ON_DEVICE=everything, GRAD_SCALE=everything, FOUND_INF=everything, PARAM_BITS=False,
                    STATE_BITS=False)
    for storage, everything in itertools.product((tl.float32, tl.float16, tl.bfloat16), (False, True)):
        yield variant(storage, storage, NEAREST, everything)
    yield variant(tl.float32, tl.bfloat16, NEAREST, True)
    yield variant(tl.bfloat16, tl.float32, MASTER, True)
    yield variant(tl.float16, tl.bfloat16, MASTER, True)
    yield variant(tl.bfloat16, tl.bfloat16, STOCHASTIC, True)
    yield variant(tl.bfloat16, tl.bfloat16, KAHAN, True)


def main(archs):
    for arch, constexprs in itertools.product(archs, variants()):
        signature = {name: "constexpr" if name in constexprs else POINTERS.get(name, "i64" if name in INTEGERS
                                                                                else "fp32")
                     for name in kernel.arg_names}
        compiled = triton.compile(ASTSource(kernel, signature, constexprs=constexprs),
                                  target=GPUTarget("cuda", arch, 32), options={"enable_fp_fusion": True})
        ptx = compiled.asm["ptx"]
        print(json.dumps({"arch": arch, "param": str(constexprs["PARAM_DTYPE"]),
                          "state": str(constexprs["STATE_DTYPE"]),
                          "update": constexprs["UPDATE"], "amsgrad": constexprs["AMSGRAD"],
                          "cubin_bytes": len(compiled.asm["cubin"]),
                          "vector_loads": len(re.findall(r"ld\.global[.\w]*\.v4", ptx)),
                          "vector_stores": len(re.findall(r"st\.global[.\w]*\.v4", ptx)),
                          "approximate_math": len(re.findall(r"\.approx", ptx))}), flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]])
