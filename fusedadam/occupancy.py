"""How many blocks (programs) of a compiled GPU kernel an SM holds at once, from the resources the kernel uses: the
occupancy calculator's arithmetic, without a GPU. Torch-free, so the build's kernel report can use it too.

Used for the CUDA kernels' resource table (kernel_resources.py: ptxas's register counts) and to size the Triton
kernel's persistent grid from the compiled kernel's registers."""
from __future__ import annotations

from dataclasses import dataclass

REGISTERS_PER_SM = 65536
REGISTER_ALLOCATION_UNIT = 256  # registers are allocated per warp in units of 256


@dataclass(frozen=True)
class SmLimits:
    threads: int
    blocks: int
    shared_bytes: int


# Per compute capability (the CUDA C++ Programming Guide's table of technical specifications).
SM_LIMITS = {
    75: SmLimits(threads=1024, blocks=16, shared_bytes=64 * 1024),
    80: SmLimits(threads=2048, blocks=32, shared_bytes=164 * 1024),
    86: SmLimits(threads=1536, blocks=16, shared_bytes=100 * 1024),
    87: SmLimits(threads=1536, blocks=16, shared_bytes=164 * 1024),
    89: SmLimits(threads=1536, blocks=24, shared_bytes=100 * 1024),
    90: SmLimits(threads=2048, blocks=32, shared_bytes=228 * 1024),
    100: SmLimits(threads=2048, blocks=32, shared_bytes=228 * 1024),
    120: SmLimits(threads=1536, blocks=32, shared_bytes=100 * 1024),
}


def limits(arch: int) -> SmLimits:
    """The limits of compute capability `arch` (e.g. 90), or of the nearest older one listed."""
    known = [a for a in SM_LIMITS if a <= arch]
    return SM_LIMITS[max(known)] if known else SM_LIMITS[min(SM_LIMITS)]


def resident_blocks(registers: int, threads: int, arch: int, shared_bytes: int = 0) -> int:
    """Blocks of `threads` threads that one SM of compute capability `arch` runs at once, for a kernel using
    `registers` registers per thread and `shared_bytes` of shared memory per block."""
    sm = limits(arch)
    warps = -(-threads // 32)
    per_warp = -(-max(registers, 1) * 32 // REGISTER_ALLOCATION_UNIT) * REGISTER_ALLOCATION_UNIT
    by_registers = REGISTERS_PER_SM // (per_warp * warps)
    by_threads = sm.threads // (warps * 32)
    by_shared = sm.shared_bytes // shared_bytes if shared_bytes else sm.blocks
    return max(0, min(by_registers, by_threads, by_shared, sm.blocks))


def occupancy(registers: int, threads: int, arch: int, shared_bytes: int = 0) -> float:
    """The share of the SM's thread slots those blocks fill."""
    return resident_blocks(registers, threads, arch, shared_bytes) * threads / limits(arch).threads
