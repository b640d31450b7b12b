"""The native module: torch-free, importable without a GPU, CUDA code compiled in for the advertised archs."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fusedadam
from fusedadam import FusedAdam
from fusedadam._native import native
from fusedadam.kernel_resources import find_cuobjdump

C = native()


def test_native_module_does_not_link_torch():
    """One wheel for every torch version: the extension must not depend on libtorch / libc10."""
    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("ldd is not available to list the extension's libraries")
    out = subprocess.run([ldd, C.__file__], capture_output=True, text=True, check=True).stdout
    assert not re.search(r"libtorch|libc10", out), out


def test_native_module_imports_without_torch():
    code = "import sys, importlib.util; spec = importlib.util.spec_from_file_location('fusedadam._C', sys.argv[1]); " \
           "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); " \
           "assert 'torch' not in sys.modules; print(m.cpu_selected_isa())"
    out = subprocess.run([sys.executable, "-c", code, C.__file__], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("avx512-bf16", "x86-64-v3", "default")


def test_cpu_isa_picked_is_the_best_this_cpu_runs():
    runnable = C.cpu_runnable_isas()
    assert runnable[-1] == "default"  # every CPU runs the build's own target
    assert C.cpu_selected_isa() == runnable[0]
    for name in runnable:
        assert name in C.cpu_compiled_isas()


def test_cpu_isa_can_be_forced_to_any_variant_this_cpu_runs(monkeypatch):
    for name in C.cpu_runnable_isas():
        monkeypatch.setenv("FUSEDADAM_CPU_ISA", name)
        assert C.cpu_selected_isa() == name


@pytest.mark.parametrize("name", ["avx9000", "AVX512-BF16", " default"])
def test_an_unknown_cpu_isa_is_refused_before_the_step_moves_anything(monkeypatch, name):
    p = torch.ones(10, requires_grad=True)
    p.grad = torch.ones(10)
    optimizer = FusedAdam([p], backend="cpu")
    optimizer.step()
    before = p.detach().clone(), {k: v.clone() for k, v in optimizer.state[p].items()}
    monkeypatch.setenv("FUSEDADAM_CPU_ISA", name)
    with pytest.raises(ValueError, match="FUSEDADAM_CPU_ISA=.*unset it, or name one of: .*default"):
        optimizer.step()
    assert torch.equal(p.detach(), before[0])
    for key, value in before[1].items():
        assert torch.equal(optimizer.state[p][key], value), key


@pytest.mark.skipif(not C.has_cuda, reason="built without CUDA (FUSEDADAM_NO_CUDA=1 or no nvcc)")
def test_cuda_cubins_for_the_configured_archs_are_embedded():
    tool = find_cuobjdump()
    if tool is None:
        pytest.skip("no cuobjdump (CUDA toolkit or triton) to list the embedded cubins")
    compiled = C.cuda_compiled_archs().split()
    archs = [a[3:] for a in compiled if a.startswith("sm_")]
    requested = [a for a in os.environ.get("FUSEDADAM_CUDA_ARCHS", "").replace(",", ";").split(";") if a]
    elves = subprocess.run([tool, "--list-elf", C.__file__], capture_output=True, text=True, check=True).stdout
    ptx = subprocess.run([tool, "--list-ptx", C.__file__], capture_output=True, text=True, check=True).stdout
    if os.environ.get("FUSEDADAM_CUDA_DEVICE_CODE") == "unoptimized-ptx":
        # A build whose device code never runs (setup.py): the first arch's PTX, and no cubin at all.
        assert len(compiled) == 1 and compiled[0].startswith("compute_") and ".cubin" not in elves, (compiled, elves)
        assert not requested or compiled == [f"compute_{requested[0]}"]
        assert f"sm_{compiled[0][len('compute_'):]}.ptx" in ptx, ptx
        return
    if requested:
        assert archs == requested
    for arch in archs:
        assert f"sm_{arch}.cubin" in elves, elves
    assert f"sm_{archs[-1]}.ptx" in ptx, ptx  # PTX of the newest arch, for GPUs newer than the build
    assert compiled == [f"sm_{a}" for a in archs] + [f"compute_{archs[-1]}"]


def test_which_gpus_a_build_runs_on():
    """A cubin runs on its major version at an equal or higher minor; PTX on anything at least as new."""
    from fusedadam.backends.cuda import runs_on

    default = "sm_75 sm_80 sm_90 sm_100 sm_110 sm_120 compute_120".split()  # no GPU visible at build time
    assert [runs_on(c, default) for c in (70, 75, 86, 87, 89, 90, 103, 121, 130)] == [False] + [True] * 8
    ci = "sm_80 sm_90 compute_90".split()
    assert [runs_on(c, ci) for c in (75, 80, 86, 89, 90, 100, 120)] == [False, True, True, True, True, True, True]
    assert not runs_on(90, ["sm_80"]) and not runs_on(86, ["sm_89", "compute_89"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a machine without a GPU")
def test_cuda_entry_points_fail_clearly_without_a_gpu():
    with pytest.raises(RuntimeError, match=r"fusedadam: cudaGetDeviceCount failed: cuda\w+: .+|built without CUDA"):
        C.cuda_device_count()
    with pytest.raises(RuntimeError, match=r"fusedadam: cuda\w+ failed: cuda\w+: .+|built without CUDA"):
        C.adam_step_cuda(device=0, stream=0, **_NO_TENSORS)


# The arguments of an Adam launch over no tensors.
_NO_TENSORS = dict(table=0, num_tensors=0, num_chunks=0, chunk_size=64, dtype=0, state_dtype=0, param_update=0, steps=0,
                   done_counter=0, lr=1e-3, lr_on_device=0, beta1=0.9, beta2=0.999, beta1_on_device=0, beta2_on_device=0,
                   eps=1e-8, weight_decay=0, weight_decay_mode=0, amsgrad=False, maximize=False, seed=0, grad_scale=0,
                   found_inf=0)


@pytest.mark.skipif(not C.has_cuda, reason="built without CUDA (FUSEDADAM_NO_CUDA=1 or no nvcc)")
def test_the_host_launcher_refuses_what_no_gpu_launch_could_be():
    done_counter = torch.zeros(1, dtype=torch.int32)
    launch = dict(_NO_TENSORS, done_counter=done_counter.data_ptr())
    tally = C.adam_step_cuda_host(device=-1, stream=0, **launch, sms=2, blocks_per_sm=3, order_seed=0)
    assert tally["blocks"] == 1 and tally["last_blocks"] == 1  # no chunks: one block, for the epilogue
    with pytest.raises(ValueError, match="chunk_size must be a positive multiple of 64"):
        C.adam_step_cuda_host(device=-1, stream=0, **dict(launch, chunk_size=100), sms=2, blocks_per_sm=3, order_seed=0)
    with pytest.raises(ValueError, match="sms >= 1 and blocks_per_sm >= 1"):
        C.adam_step_cuda_host(device=-1, stream=0, **launch, sms=0, blocks_per_sm=3, order_seed=0)
    with pytest.raises(ValueError, match="unsupported combination"):
        C.adam_step_cuda_host(device=-1, stream=0, **dict(launch, dtype=1, state_dtype=3), sms=1, blocks_per_sm=1,
                              order_seed=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a machine without a GPU")
def test_the_cuda_backend_without_a_gpu_is_a_clear_error():
    from fusedadam.backends import BACKENDS

    assert "no CUDA GPU" in BACKENDS["cuda"].unavailable_reason() or not C.has_cuda
    with pytest.raises(ValueError, match=r"backend='cuda' cannot step parameter 0 of param group 0: "):
        FusedAdam([torch.randn(3)], backend="cuda")


def test_bandwidth_probe_touches_exactly_its_arrays():
    n = 100_001
    a, b, c, d = (torch.randint(-2**31, 2**31 - 1, (n + 2,), dtype=torch.int32) for _ in range(4))
    expect = [x.clone() for x in (a, b, c)]
    C.bandwidth_probe_cpu(a[1:].data_ptr(), b[1:].data_ptr(), c[1:].data_ptr(), d[1:].data_ptr(), n, 2)
    for got, before in zip((a, b, c), expect):
        assert torch.equal(got[1:-1], before[1:-1] ^ d[1:-1])
        assert got[0] == before[0] and got[-1] == before[-1]


def test_version():
    assert fusedadam.__version__ == "0.1.0"
