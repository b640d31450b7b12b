"""Builds fusedadam._C without torch: pybind11 + the host compiler (OpenMP), plus nvcc when present.

Environment:
  FUSEDADAM_NO_CUDA=1          skip the CUDA sources even when nvcc is found
  FUSEDADAM_CUDA_ARCHS="80;90" compute capabilities to build cubins for (PTX is added for the last); default: the
                               GPUs visible here, else every major version nvcc supports from sm_75 up
  CUDA_HOME / CUDA_PATH        the toolkit to use (else nvcc on PATH, else /usr/local/cuda)
  FUSEDADAM_SANITIZE=address   a test build with AddressSanitizer (C++ and the host side of the CUDA sources); run
                               Python with LD_PRELOAD=$(gcc -print-file-name=libasan.so), as
                               scripts/asan_check.sh does; host code at -O1 (host_optimization)
  FUSEDADAM_CUDA_DEVICE_CODE=unoptimized-ptx
                               device code as unoptimized PTX of the first arch only (no ptxas, no cubin): for builds
                               whose device code never runs, only the host-played kernel (mutants, AddressSanitizer)

Compiled objects, nvcc's and the host compiler's, are cached by content under build/ (ObjectCache).
"""
import hashlib
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension
import setuptools
from setuptools import setup
from setuptools.command.build_ext import build_ext

# Absolute: older setuptools (65.5, the GPU machine's) run this file with __file__ = "setup.py", and nvcc's commands,
# which the object cache keys with project paths made relative, would then name the sources differently.
ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
DEFAULT_CUDA_ARCHS = "75;80;90"  # when nvcc cannot list what it supports
PTXAS_REPORT = "_C.ptxas.txt"  # ptxas's resource lines for every kernel, beside the module


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


def cuda_arch_list(nvcc):
    """FUSEDADAM_CUDA_ARCHS, else the GPUs visible here (as torch's extension builds do), else one cubin per major
    version that this nvcc supports from sm_75 up. A cubin runs on every GPU of its major version with an equal or
    higher minor (sm_80's on an A10, L4 or RTX 3090 / 4090: 8.6, 8.9), and PTX of the newest is added for GPUs
    newer than all of them, which the driver compiles at load."""
    requested = os.environ.get("FUSEDADAM_CUDA_ARCHS", "").strip()
    if requested:
        archs = [a.strip().replace("sm_", "").replace(".", "") for a in requested.replace(",", ";").split(";")]
        archs = [a for a in archs if a]
        if not archs or not all(a.isdigit() for a in archs):
            raise SystemExit(f"FUSEDADAM_CUDA_ARCHS must look like '80;90', got {requested!r}")
        return archs
    visible = _query(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"])
    archs = sorted({line.strip().replace(".", "") for line in visible if re.fullmatch(r"\d+\.\d+", line.strip())},
                   key=int)
    if archs:
        print(f"fusedadam: building for the GPUs visible here: {' '.join('sm_' + a for a in archs)}", flush=True)
        return archs
    supported = sorted({int(code[3:]) for code in " ".join(_query([str(nvcc), "--list-gpu-code"])).split()
                        if re.fullmatch(r"sm_\d+", code) and int(code[3:]) >= 75})
    per_major = sorted({min(a for a in supported if a // 10 == major) for major in {a // 10 for a in supported}})
    archs = [str(a) for a in per_major] or DEFAULT_CUDA_ARCHS.split(";")
    print(f"fusedadam: no GPU visible; building for every major version from sm_75 up: {' '.join('sm_' + a for a in archs)} "
          "(FUSEDADAM_CUDA_ARCHS=90 builds one)", flush=True)
    return archs


def included_files(source: Path) -> list[Path]:
    """The source and every file it includes with #include "...", transitively (found beside the including file or
    in csrc/, as nvcc's -I does): what a compiled object is cached by (ObjectCache). A CPU kernel edit then rebuilds
    no CUDA object, and a CUDA edit no CPU object."""
    found, pending = {source.resolve()}, [source.resolve()]
    while pending:
        including = pending.pop()
        for name in re.findall(r'^\s*#\s*include\s*"([^"]+)"', including.read_text(), re.MULTILINE):
            for path in (including.parent / name, CSRC / name):
                if path.is_file():
                    path = path.resolve()
                    if path not in found:
                        found.add(path)
                        pending.append(path)
                    break
    return sorted(found)


class ObjectCache:
    """Compiled objects kept under build/<name>, each named by a digest of what decides its bytes: the command, the
    compiler's version, the source and every project file it includes. An editable install builds in a fresh temporary
    folder each time, so without it every build compiled everything (a CUDA-only edit recompiled the CPU kernels; a
    mutant, then the restored source, recompiled all of it). Include folders outside the project enter the key by the
    content of their headers, not their path, so venvs with the same Python and pybind11 share objects."""

    def __init__(self, name: str):
        self.folder = ROOT / "build" / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tool_versions: dict[str, str] = {}
        self._folder_digests: dict[str, str] = {}

    def path(self, source: Path, command: list[str], suffix: str = ".o") -> Path:
        key = hashlib.sha256()
        for path in included_files(source):
            key.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
        key.update(self._tool_version(command[0]).encode())
        key.update("\0".join(self._portable(arg) for arg in command).encode())
        return self.folder / f"{source.stem}-{key.hexdigest()[:16]}{suffix}"

    def _tool_version(self, tool: str) -> str:
        if tool not in self._tool_versions:
            self._tool_versions[tool] = "\n".join(_query([tool, "--version"]))
        return self._tool_versions[tool]

    def _portable(self, arg: str) -> str:
        """An argument as the key sees it: a project path relative to the project, any other include folder (a venv's
        pybind11, Python's headers) as the digest of its headers."""
        folder = arg[2:] if arg.startswith("-I") else None
        if folder is None or not Path(folder).is_dir():
            return arg.replace(str(ROOT), "<project>")
        if Path(folder).resolve().is_relative_to(CSRC.resolve()):
            return "-I<project>/" + str(Path(folder).resolve().relative_to(ROOT))  # in included_files
        if folder not in self._folder_digests:
            digest = hashlib.sha256()
            for header in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix in (".h", ".hpp", ".inl")):
                digest.update(str(header.relative_to(folder)).encode() + b"\0" + header.read_bytes())
            self._folder_digests[folder] = digest.hexdigest()
        return "-I" + self._folder_digests[folder]

    @staticmethod
    def store(made: Path, cached: Path) -> None:
        """Copies a fresh object in under a temporary name first: a build interrupted mid-copy leaves no torn object
        that a later build would take for a finished one."""
        partial = cached.with_name(cached.name + f".{os.getpid()}.partial")
        shutil.copyfile(made, partial)
        os.replace(partial, cached)


def cuda_device_code_mode() -> str:
    mode = os.environ.get("FUSEDADAM_CUDA_DEVICE_CODE", "").strip()
    if mode not in ("", "unoptimized-ptx"):
        raise SystemExit(f"FUSEDADAM_CUDA_DEVICE_CODE must be 'unoptimized-ptx' or unset, got {mode!r}")
    return mode


def _query(cmd) -> list[str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return done.stdout.splitlines() if done.returncode == 0 else []


def cuda_library_dir(nvcc):
    homes = [nvcc.resolve().parent.parent, nvcc.parent.parent]
    homes += [Path(h) for h in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda") if h]
    for home in homes:
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"):
            if (home / sub / "libcudart_static.a").exists():
                return home / sub
    raise SystemExit(f"libcudart_static.a not found under {', '.join(map(str, homes))}; "
                     "set CUDA_HOME or FUSEDADAM_NO_CUDA=1")


def license_metadata() -> dict:
    """BSD-3-Clause, stated the way this setuptools understands: an SPDX expression from 77 on (the older
    table form is deprecated there), the plain license field before (64-76 reject the SPDX string in pyproject)."""
    major = int(setuptools.__version__.split(".")[0])
    return {"license_expression": "BSD-3-Clause"} if major >= 77 else {"license": "BSD-3-Clause"}


def sanitizer_flags() -> list[str]:
    sanitizer = os.environ.get("FUSEDADAM_SANITIZE", "").strip()
    if sanitizer not in ("", "address"):
        raise SystemExit(f"FUSEDADAM_SANITIZE must be 'address' or unset, got {sanitizer!r}")
    return [f"-fsanitize={sanitizer}", "-fno-omit-frame-pointer"] if sanitizer else []


def host_optimization() -> str:
    """-O3, or -O1 with a sanitizer: AddressSanitizer checks every access the source makes at either level (-O1 is the
    level its documentation asks for), and instrumented -O3 took ~70% longer to compile (the CPU kernel's ISA
    variants, the nine CUDA sources' host side), most of CI's AddressSanitizer step."""
    return "-O1" if sanitizer_flags() else "-O3"


def build_jobs():
    jobs = int(os.environ.get("FUSEDADAM_BUILD_JOBS", "0") or 0)
    return jobs if jobs > 0 else (os.cpu_count() or 1)


class BuildExtWithCuda(build_ext):
    """Compiles csrc/cuda/*.cu with nvcc, side by side, into objects that the extension links with cudart_static.
    ptxas reports every kernel's registers, stack and spills (-Xptxas -v); those lines are kept next to the module as
    _C.ptxas.txt, which `python -m fusedadam info --kernels` and tests/test_kernel_resources.py read."""

    def build_extension(self, ext):
        self._compile_through_cache()
        nvcc = find_nvcc()
        if nvcc is not None:
            archs = cuda_arch_list(nvcc)
            if cuda_device_code_mode() == "unoptimized-ptx":
                # -G: nvcc's documented switch that turns device optimization off; with PTX as the only target
                # ptxas never runs. About a third of each CUDA source's compile time goes (the host side stays).
                arch_names = f"compute_{archs[0]}"
                device_flags = ["-G", f"-gencode=arch=compute_{archs[0]},code=compute_{archs[0]}"]
            else:
                arch_names = " ".join([f"sm_{a}" for a in archs] + [f"compute_{archs[-1]}"])
                device_flags = ["-Xptxas", "-v", *(f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs),
                                f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
            cuda_objects = ObjectCache("cuda-objects")

            def planned(source):
                # The host compiler contracts nothing, as for the CPU kernels: the kernel code nvcc also compiles for
                # the host (backend "cuda-host") then computes exactly what the CPU kernel does. Device code keeps
                # nvcc's FMA contraction (--fmad=true), as torch's kernels do.
                host_flags = [flag for f in ["-fPIC", "-fvisibility=hidden", "-ffp-contract=off", *sanitizer_flags()]
                              for flag in ("-Xcompiler", f)]
                cmd = [str(nvcc), "-std=c++17", host_optimization(), *host_flags, f"-I{CSRC}",
                       f'-DFUSEDADAM_CUDA_ARCH_LIST="{arch_names}"', *device_flags, "-c", str(source)]
                obj = cuda_objects.path(source, cmd)
                return cmd + ["-o", str(obj)], obj

            def compile_one(cmd, obj):
                log = obj.with_suffix(".log")
                if obj.exists() and log.exists():
                    return cmd, obj, subprocess.CompletedProcess(cmd, 0, log.read_text(), "")
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode == 0:
                    log.write_text(done.stdout + done.stderr)
                return cmd, obj, done

            plans = [planned(source) for source in sorted((CSRC / "cuda").glob("*.cu"))]
            # An object this build has not made yet (other archs, flags or sources) makes the module out of date.
            ext.depends = [*ext.depends, *(str(obj) for _, obj in plans)]
            # nvcc runs while the C++ sources compile (it took 100 s on 16 cores one after the other, the longest .cu
            # and .cpp files setting each half); its objects join the link, which waits for them.
            pool = ThreadPoolExecutor(max_workers=build_jobs())
            pending = [pool.submit(compile_one, cmd, obj) for cmd, obj in plans]
            ext.define_macros.append(("FUSEDADAM_WITH_CUDA", "1"))
            ext.library_dirs.append(str(cuda_library_dir(nvcc)))
            # Static cudart: the wheel needs only the driver, which is loaded lazily at the first CUDA call,
            # so the module imports on machines without a GPU.
            ext.libraries += ["cudart_static", "dl", "rt", "pthread"]
            link = self.compiler.link_shared_object

            def link_with_cuda_objects(objects, *args, **kwargs):
                return link(list(objects) + self._cuda_objects(pending), *args, **kwargs)

            self.compiler.link_shared_object = link_with_cuda_objects
            try:
                super().build_extension(ext)
                self._cuda_objects(pending)  # also when setuptools found the module up to date and linked nothing
            finally:
                self.compiler.link_shared_object = link
                pool.shutdown(cancel_futures=True)
        else:
            self._ptxas_report = None
            print("fusedadam: building without CUDA (nvcc not found or FUSEDADAM_NO_CUDA=1)", flush=True)
            super().build_extension(ext)
        report = Path(self.get_ext_fullpath(ext.name)).with_name(PTXAS_REPORT)
        if self._ptxas_report is None:
            report.unlink(missing_ok=True)
        else:
            report.write_text(self._ptxas_report)

    def _compile_through_cache(self):
        """The host compiler's objects (the CPU kernels, the bindings) through ObjectCache("cpu-objects"): a build
        that changes none of a source's inputs copies its object instead of compiling it."""
        if getattr(self, "_compiles_through_cache", False) or not hasattr(self.compiler, "compiler_so"):
            return  # not a Unix-style compiler: every build compiles everything, as setuptools does
        cache, compile_uncached = ObjectCache("cpu-objects"), self.compiler._compile

        def compile_cached(obj, src, ext, cc_args, extra_postargs, pp_opts):
            cached = cache.path(ROOT / src, [*self.compiler.compiler_so, *cc_args, *extra_postargs])
            if cached.exists():
                shutil.copyfile(cached, obj)
            else:
                compile_uncached(obj, src, ext, cc_args, extra_postargs, pp_opts)
                ObjectCache.store(Path(obj), cached)

        self.compiler._compile = compile_cached
        self._compiles_through_cache = True

    def _cuda_objects(self, pending) -> list[str]:
        """The nvcc objects, once each has finished: their commands and messages printed, the ptxas report kept, and
        a SystemExit naming the first source nvcc failed on."""
        if getattr(self, "_cuda_done", None) is not pending:
            ptxas, objects = [], []
            for cmd, obj, done in (future.result() for future in pending):
                print(" ".join(cmd), flush=True)
                lines = (done.stdout + done.stderr).splitlines()
                ptxas += [line for line in lines if line.startswith("ptxas info") or line.startswith("    ")]
                other = [line for line in lines if not (line.startswith("ptxas info") or line.startswith("    "))]
                if other:
                    print("\n".join(other), flush=True)
                if done.returncode != 0:
                    raise SystemExit(f"nvcc failed on {cmd[-3]} (exit {done.returncode})")
                objects.append(str(obj))
            self._ptxas_report = "\n".join(ptxas) + "\n"
            self._cuda_done, self._cuda_object_paths = pending, objects
        return self._cuda_object_paths

    def copy_extensions_to_source(self):
        """Editable installs copy the module into the source tree; the ptxas report goes beside it."""
        super().copy_extensions_to_source()
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            inplace_file, regular_file = self._get_inplace_equivalent(build_py, ext)
            report, target = Path(regular_file).with_name(PTXAS_REPORT), Path(inplace_file).with_name(PTXAS_REPORT)
            if report.exists():
                self.copy_file(str(report), str(target))
            else:
                target.unlink(missing_ok=True)


# The CPU kernels are split over translation units (csrc/cpu/adam_cpu*.cpp) that compile side by side:
# FUSEDADAM_BUILD_JOBS=N caps the parallel compiles (default: every core).
ParallelCompile("FUSEDADAM_BUILD_JOBS", default=0).install()

native = Pybind11Extension(
    "fusedadam._C",
    sources=sorted(str(p.relative_to(ROOT)) for p in [CSRC / "bindings.cpp", *(CSRC / "cpu").glob("*.cpp")]),
    include_dirs=[str(CSRC)],
    # A header or CUDA source edit rebuilds the module (the CUDA objects are linked in, build_extension).
    depends=sorted(str(p.relative_to(ROOT)) for pattern in ("*.h", "*.cuh", "*.cu") for p in CSRC.rglob(pattern)),
    cxx_std=17,
    # -fno-math-errno: without it sqrt() may set errno, which blocks vectorization (measured 2.7x slower).
    # -fno-trapping-math: lets GCC turn the branches of the fp16 conversion into vector selects; no
    # result changes (nothing here enables floating-point traps).
    # -ffp-contract=off: no a*b+c fused into an FMA. With contraction GCC fused differently in a loop's vector
    # body and its epilogue (AVX-512 clone), so an element's bits depended on its position in a thread's slice,
    # i.e. on the tensor's size and the thread count. Without it every element is the same IEEE fp32 expression.
    extra_compile_args=[host_optimization(), "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off",
                        *sanitizer_flags()],
    extra_link_args=["-fopenmp", *sanitizer_flags()],
)

setup(ext_modules=[native], cmdclass={"build_ext": BuildExtWithCuda}, **license_metadata())
