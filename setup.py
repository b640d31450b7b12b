"""Builds fusedadam._C without torch: pybind11 + the host compiler (OpenMP), plus nvcc when present.

Environment:
  FUSEDADAM_NO_CUDA=1          skip the CUDA sources even when nvcc is found
  FUSEDADAM_CUDA_ARCHS="80;90" compute capabilities to build cubins for (PTX is added for the last)
  CUDA_HOME / CUDA_PATH        the toolkit to use (else nvcc on PATH, else /usr/local/cuda)
"""
import os
import shutil
import subprocess
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension
from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
CSRC = ROOT / "csrc"
DEFAULT_CUDA_ARCHS = "80;90"


def find_nvcc():
    if os.environ.get("FUSEDADAM_NO_CUDA", "0") not in ("", "0"):
        return None
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home and (Path(home) / "bin" / "nvcc").exists():
            return Path(home) / "bin" / "nvcc"
    found = shutil.which("nvcc")
    if found:
        return Path(found)
    fallback = Path("/usr/local/cuda/bin/nvcc")
    return fallback if fallback.exists() else None


def cuda_arch_list():
    archs = [a.strip().replace("sm_", "").replace(".", "") for a in
             os.environ.get("FUSEDADAM_CUDA_ARCHS", DEFAULT_CUDA_ARCHS).replace(",", ";").split(";")]
    archs = [a for a in archs if a]
    if not archs or not all(a.isdigit() for a in archs):
        raise SystemExit(f"FUSEDADAM_CUDA_ARCHS must look like '80;90', got {os.environ['FUSEDADAM_CUDA_ARCHS']!r}")
    return archs


def cuda_library_dir(nvcc):
    homes = [nvcc.resolve().parent.parent, nvcc.parent.parent]
    homes += [Path(h) for h in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda") if h]
    for home in homes:
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"):
            if (home / sub / "libcudart_static.a").exists():
                return home / sub
    raise SystemExit(f"libcudart_static.a not found under {', '.join(map(str, homes))}; "
                     "set CUDA_HOME or FUSEDADAM_NO_CUDA=1")


class BuildExtWithCuda(build_ext):
    """Compiles csrc/cuda/*.cu with nvcc into objects that the extension links with cudart_static."""

    def build_extension(self, ext):
        nvcc = find_nvcc()
        if nvcc is not None:
            archs = cuda_arch_list()
            arch_names = " ".join([f"sm_{a}" for a in archs] + [f"compute_{archs[-1]}"])
            gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
            gencode.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")
            out_dir = Path(self.build_temp) / "cuda"
            out_dir.mkdir(parents=True, exist_ok=True)
            for source in sorted((CSRC / "cuda").glob("*.cu")):
                obj = out_dir / (source.stem + ".o")
                cmd = [str(nvcc), "-std=c++17", "-O3", "--threads", "0", "-Xcompiler", "-fPIC",
                       "-Xcompiler", "-fvisibility=hidden", f"-I{CSRC}",
                       f'-DFUSEDADAM_CUDA_ARCH_LIST="{arch_names}"', *gencode, "-c", str(source), "-o", str(obj)]
                print(" ".join(cmd), flush=True)
                subprocess.check_call(cmd)
                ext.extra_objects.append(str(obj))
            ext.define_macros.append(("FUSEDADAM_WITH_CUDA", "1"))
            ext.library_dirs.append(str(cuda_library_dir(nvcc)))
            # Static cudart: the wheel needs only the driver, which is loaded lazily at the first CUDA call,
            # so the module imports on machines without a GPU.
            ext.libraries += ["cudart_static", "dl", "rt", "pthread"]
        else:
            print("fusedadam: building without CUDA (nvcc not found or FUSEDADAM_NO_CUDA=1)", flush=True)
        super().build_extension(ext)


# The CPU kernels are split over translation units (csrc/cpu/adam_cpu*.cpp) that compile side by side:
# FUSEDADAM_BUILD_JOBS=N caps the parallel compiles (default: every core).
ParallelCompile("FUSEDADAM_BUILD_JOBS", default=0).install()

native = Pybind11Extension(
    "fusedadam._C",
    sources=sorted(str(p.relative_to(ROOT)) for p in [CSRC / "bindings.cpp", *(CSRC / "cpu").glob("*.cpp")]),
    include_dirs=[str(CSRC)],
    depends=sorted(str(p.relative_to(ROOT)) for p in CSRC.rglob("*.h")),  # a header edit rebuilds the module
    cxx_std=17,
    # -fno-math-errno: without it sqrt() may set errno, which blocks vectorization (measured 2.7x slower).
    # -fno-trapping-math: lets GCC turn the branches of the fp16 conversion into vector selects; no
    # result changes (nothing here enables floating-point traps).
    # -ffp-contract=off: no a*b+c fused into an FMA. With contraction GCC fused differently in a loop's vector
    # body and its epilogue (AVX-512 clone), so an element's bits depended on its position in a thread's slice,
    # i.e. on the tensor's size and the thread count. Without it every element is the same IEEE fp32 expression.
    extra_compile_args=["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"],
    extra_link_args=["-fopenmp"],
)

setup(ext_modules=[native], cmdclass={"build_ext": BuildExtWithCuda})
