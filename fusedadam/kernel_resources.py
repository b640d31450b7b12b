"""What the compiled CUDA kernels use, read without a GPU: per kernel and architecture, ptxas's registers, stack, spills
and shared memory (kept beside the module at build time as _C.ptxas.txt), the resident 256-thread blocks per SM those
allow (occupancy.py), and, where a cuobjdump is found (the CUDA toolkit's or Triton's), how many of the kernel's global
loads and stores are 128-bit (LDG.E.128 / STG.E.128) in its SASS.

`python -m fusedadam info --kernels` prints the table; tests/test_kernel_resources.py holds every kernel to no spills,
no local memory, at least half occupancy, and 128-bit accesses on its aligned path."""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .occupancy import occupancy, resident_blocks

THREADS_PER_BLOCK = 256  # csrc/cuda/persistent_launch.cuh kThreadsPerBlock
REPORT_NAME = "_C.ptxas.txt"

DTYPE_NAMES = {0: "fp32", 1: "fp64", 2: "fp16", 3: "bf16", 4: "8bit"}  # csrc/tensor_table.h DType
UPDATE_NAMES = {0: "nearest", 1: "master", 2: "stochastic", 3: "kahan"}  # csrc/param_update.h ParamUpdate
WEIGHT_DECAY_NAMES = {0: "none", 1: "l2", 2: "decoupled"}  # csrc/adam_math.h WeightDecay


@dataclass
class KernelResources:
    symbol: str
    arch: int
    registers: int
    stack_bytes: int
    spill_store_bytes: int
    spill_load_bytes: int
    shared_bytes: int
    # The AdamKernel instantiation, when the symbol is one: param / state dtype, update, weight decay, amsgrad, maximize.
    instance: dict = field(default_factory=dict)
    # From the SASS, when a cuobjdump was found: global loads / stores of 128, 64 and 32 bits or fewer.
    accesses: dict | None = None

    @property
    def name(self) -> str:
        if not self.instance:
            return function_name(self.symbol)
        i = self.instance
        modes = "+".join(m for m, on in (("amsgrad", i["amsgrad"]), ("maximize", i["maximize"])) if on) or "-"
        return f"{i['param']}/{i['state']}/{i['update']} wd={i['weight_decay']} {modes}"

    @property
    def blocks_per_sm(self) -> int:
        return resident_blocks(self.registers, THREADS_PER_BLOCK, self.arch, self.shared_bytes)

    @property
    def occupancy(self) -> float:
        return occupancy(self.registers, THREADS_PER_BLOCK, self.arch, self.shared_bytes)


def report_path() -> Path | None:
    """The ptxas report beside the native module, or None (built without CUDA, or not built)."""
    from ._native import try_native

    module = try_native()
    if module is None:
        return None
    path = Path(module.__file__).with_name(REPORT_NAME)
    return path if path.exists() else None


def function_name(symbol: str) -> str:
    """The unqualified name in an Itanium-mangled symbol (its last length-prefixed identifier before the arguments)."""
    names, position = [], symbol.find("N") + 1 if symbol.startswith("_ZN") else 2
    while position < len(symbol):
        digits = re.match(r"\d+", symbol[position:])
        if digits is None:
            break
        start = position + len(digits.group())
        names.append(symbol[start:start + int(digits.group())])
        position = start + int(digits.group())
    return names[-1] if names else symbol


def adam_instance(symbol: str) -> dict:
    """The template arguments of an AdamKernel persistent_kernel symbol (Itanium-mangled), or {}."""
    if "AdamKernel" not in symbol:
        return {}
    # Precision<DType, DType, ParamUpdate>, WeightDecay: integer template arguments, in order; then two bools.
    numbers = [int(n) for n in re.findall(r"L(?:NS_\d+[A-Za-z]+E|S\d*_)(\d+)E", symbol)]
    flags = [int(b) for b in re.findall(r"Lb([01])E", symbol)]
    if len(numbers) != 4 or len(flags) != 2:
        return {}
    param, state, update, weight_decay = numbers
    return {"param": DTYPE_NAMES[param], "state": DTYPE_NAMES[state], "update": UPDATE_NAMES[update],
            "weight_decay": WEIGHT_DECAY_NAMES[weight_decay], "amsgrad": bool(flags[0]), "maximize": bool(flags[1])}


def parse_ptxas(text: str) -> list[KernelResources]:
    """Every entry function of `nvcc -Xptxas -v` output, per architecture. (Device functions that ptxas also reports,
    such as math library helpers, have "Function properties" but no entry: they are skipped.)"""
    kernels = []
    current = None
    properties_of = None
    for line in text.splitlines():
        entry = re.search(r"Compiling entry function '(\S+)' for 'sm_(\d+)a?'", line)
        if entry:
            current = KernelResources(entry.group(1), int(entry.group(2)), 0, 0, 0, 0, 0, adam_instance(entry.group(1)))
            kernels.append(current)
            continue
        properties = re.search(r"Function properties for (\S+)", line)
        if properties:
            properties_of = properties.group(1)
            continue
        frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if frame and current is not None and properties_of == current.symbol:
            current.stack_bytes, current.spill_store_bytes, current.spill_load_bytes = map(int, frame.groups())
        used = re.search(r"Used (\d+) registers", line)
        if used and current is not None:
            current.registers = int(used.group(1))
            shared = re.search(r"(\d+) bytes smem", line)
            current.shared_bytes = int(shared.group(1)) if shared else 0
    return kernels


def find_cuobjdump() -> str | None:
    candidates = [shutil.which("cuobjdump")]
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            candidates.append(str(Path(home) / "bin" / "cuobjdump"))
    try:
        import triton
        candidates.append(str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"))
    except ImportError:
        pass
    return next((c for c in candidates if c and Path(c).exists()), None)


@functools.lru_cache(maxsize=None)
def sass_accesses(module_file: str, cuobjdump: str) -> dict[tuple[str, int], dict]:
    """Per (symbol, arch): the count of global loads and stores by width in the kernel's SASS."""
    sass = subprocess.run([cuobjdump, "-sass", module_file], capture_output=True, text=True, check=True).stdout
    result: dict[tuple[str, int], dict] = {}
    arch = 0
    counts = None
    for line in sass.splitlines():
        # Substring tests first: the SASS of every instantiation is ~1.5M lines, and a regex on each took 14 s.
        if "arch = sm_" in line:
            arch = int(re.search(r"arch = sm_(\d+)", line).group(1))
        function = re.match(r"\s*Function : (\S+)", line) if "Function :" in line else None
        if function:
            counts = result.setdefault((function.group(1), arch), {"load128": 0, "store128": 0, "load64": 0,
                                                                  "store64": 0, "narrow": 0})
            continue
        if counts is None or ("LD" not in line and "ST" not in line):
            continue
        access = re.search(r"\b(LDG|STG|LD|ST)\.E(?:\.(?:EL|LU|EF|NA|STRONG\.\w+|CONSTANT))*(?:\.(128|64|U8|S8|U16|S16))?\b",
                           line)
        if access is None:
            continue
        kind = "load" if access.group(1).startswith("LD") else "store"
        width = access.group(2)
        if width in ("128", "64"):
            counts[f"{kind}{width}"] += 1
        else:
            counts["narrow"] += 1
    return result


def kernel_table(with_sass: bool = True) -> list[KernelResources]:
    """Every kernel of the built module with its resources ([] when the module has no CUDA code)."""
    path = report_path()
    if path is None:
        return []
    kernels = parse_ptxas(path.read_text())
    tool = find_cuobjdump() if with_sass else None
    if tool is not None:
        from ._native import native

        counts = sass_accesses(native().__file__, tool)
        for k in kernels:
            k.accesses = counts.get((k.symbol, k.arch))
    return kernels


def format_table(kernels: list[KernelResources]) -> str:
    if not kernels:
        return "no CUDA kernels (fusedadam was built without CUDA, or its ptxas report is missing)"
    lines = [f"{'arch':<6} {'kernel':<48} {'regs':>4} {'stack':>5} {'spill':>5} {'blocks/SM':>9} {'occupancy':>9} "
             f"{'128-bit ld/st':>13}"]
    for k in sorted(kernels, key=lambda k: (k.arch, k.name)):
        wide = f"{k.accesses['load128']}/{k.accesses['store128']}" if k.accesses else "?"
        lines.append(f"sm_{k.arch:<3} {k.name:<48} {k.registers:>4} {k.stack_bytes:>5} "
                     f"{k.spill_store_bytes + k.spill_load_bytes:>5} {k.blocks_per_sm:>9} {k.occupancy:>8.1%} {wide:>13}")
    return "\n".join(lines)
