"""What only a GPU can show: one launch for thousands of tensors, 64-bit offsets past 2^31 elements, CUDA
graph capture and replay, and the step staying on the device. Skipped with the reason where there is no GPU
(the rest of the suite covers the same kernels' numbers on every dtype, mode and shape class)."""
import pytest
import torch

from fusedadam import FusedAdam
from fusedadam.reference import AdamConfig, ReferenceState, reference_adam_step
from harness import assert_close_to_reference, make_problem, operand_scales, reference_tensors, run_fusedadam, \
    run_reference, tensors_of

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")]

DEVICE_BACKENDS = ["cuda", "triton"]


@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
def test_thousands_of_tensors_in_one_launch_per_step(backend):
    sizes = torch.randint(1, 5000, (6000,), generator=torch.Generator().manual_seed(5)).tolist()
    mode = AdamConfig(weight_decay=0.1, decoupled_weight_decay=True)
    problem = make_problem([(n,) for n in sizes], torch.float32, "cuda", steps=3)
    params, states = run_fusedadam(problem, mode, backend)
    assert_close_to_reference(tensors_of(params, states, mode), reference_tensors(run_reference(problem, mode), mode),
                              torch.float32, operand_scales(problem, mode))

    # With the gradients in place, a step is one kernel and no host-to-device copy.
    optimizer = FusedAdam(params, backend=backend)
    optimizer.step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        optimizer.step()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    adam_kernels = [e for e in kernels if "adam" in e.name.lower()]
    assert len(adam_kernels) == 1, [e.name for e in kernels]
    assert not [e for e in kernels if "memcpy" in e.name.lower() and "htod" in e.name.lower()]


@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
def test_a_tensor_of_more_than_2_to_the_31_elements(backend):
    n = 2 ** 31 + 1
    needed = n * 2 * 4  # bf16 p, g, m, v
    if torch.cuda.mem_get_info()[0] < needed * 1.2:
        pytest.skip(f"needs {needed / 2**30:.0f} GiB of free GPU memory")
    p = torch.randn(n, dtype=torch.bfloat16, device="cuda")
    p.grad = torch.randn(n, dtype=torch.bfloat16, device="cuda")
    ends = [slice(0, 4096), slice(n - 4096, n)]
    expected = []
    for where in ends:
        state = ReferenceState.fresh(p[where].cpu())
        reference_adam_step(state, p.grad[where].cpu().double(), AdamConfig())
        expected.append(state.param)
    FusedAdam([p], backend=backend).step()
    for where, want in zip(ends, expected):
        got = p[where].cpu().double()
        assert (got - want).abs().max().item() <= 2 ** -7 * want.abs().max().item()


def _capture_step(optimizer, warm_up) -> torch.cuda.CUDAGraph:
    """torch.cuda.graph's protocol: warm_up() (which steps) on a side stream, then the step captured in a graph."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # builds the plan and uploads the launch table
        warm_up()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        optimizer.step()
    return graph


@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
def test_cuda_graph_capture_and_replay_matches_eager_torch(backend):
    torch.manual_seed(0)
    shapes = [(1000,), (37, 11), (1,)]
    grads = [[torch.randn(s, device="cuda") for s in shapes] for _ in range(6)]
    params = [torch.randn(s, device="cuda") for s in shapes]
    reference = [p.clone() for p in params]
    lr = torch.tensor(1e-2, device="cuda")
    optimizer = FusedAdam(params, lr=lr, capturable=True, backend=backend)
    torch_optimizer = torch.optim.Adam(reference, lr=torch.tensor(1e-2, device="cuda"), capturable=True)
    for p in params:
        p.grad = torch.zeros_like(p)

    def load(step):
        for p, g in zip(params, grads[step]):
            p.grad.copy_(g)

    def warm_up():
        for step in range(2):
            load(step)
            optimizer.step()

    graph = _capture_step(optimizer, warm_up)
    for step in range(2, 6):
        if step == 4:
            lr.fill_(5e-3)  # a tensor lr is read at replay time
        load(step)
        graph.replay()

    for step in range(6):
        for r, g in zip(reference, grads[step]):
            r.grad = g.clone()
        torch_optimizer.param_groups[0]["lr"].fill_(1e-2 if step < 4 else 5e-3)
        torch_optimizer.step()
    torch.cuda.synchronize()
    for p, r in zip(params, reference):
        torch.testing.assert_close(p, r, rtol=1e-5, atol=1e-6)
        assert optimizer.state[p]["step"].device.type == "cuda" and optimizer.state[p]["step"].item() == 6


@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
def test_checkpoints_move_between_gpu_and_cpu(backend):
    """A GPU checkpoint loads on the CPU (map_location) and continues like the GPU run; a CPU checkpoint of
    torch.optim.Adam loads into a GPU FusedAdam. `step` goes where torch's load_state_dict puts it, and the
    device backends keep it on the GPU from the next step on."""
    import io

    torch.manual_seed(0)
    shapes = [(300,), (7, 9)]
    grads = [[torch.randn(s) for s in shapes] for _ in range(4)]

    def steps(optimizer, params, which):
        for step in which:
            for p, g in zip(params, grads[step]):
                p.grad = g.to(p.device)
            optimizer.step()

    gpu_params = [torch.randn(s, device="cuda") for s in shapes]
    cpu_params = [p.cpu() for p in gpu_params]
    gpu_optimizer = FusedAdam(gpu_params, lr=1e-2, backend=backend)
    steps(gpu_optimizer, gpu_params, range(2))
    buffer = io.BytesIO()
    torch.save(gpu_optimizer.state_dict(), buffer)
    buffer.seek(0)
    cpu_params = [p.detach().cpu().clone() for p in gpu_params]
    cpu_optimizer = FusedAdam(cpu_params, lr=1e-2, backend="cpu")
    cpu_optimizer.load_state_dict(torch.load(buffer, map_location="cpu"))
    steps(gpu_optimizer, gpu_params, range(2, 4))
    steps(cpu_optimizer, cpu_params, range(2, 4))
    for g, c in zip(gpu_params, cpu_params):
        torch.testing.assert_close(g.cpu(), c, rtol=1e-5, atol=1e-7)
    assert all(cpu_optimizer.state[p]["step"].item() == 4 for p in cpu_params)

    reference = [torch.randn(s) for s in shapes]
    torch_optimizer = torch.optim.Adam(reference, lr=1e-2)
    steps(torch_optimizer, reference, range(2))
    moved = [p.detach().cuda() for p in reference]
    gpu_optimizer = FusedAdam(moved, lr=1e-2, backend=backend)
    gpu_optimizer.load_state_dict(torch_optimizer.state_dict())
    steps(torch_optimizer, reference, range(2, 4))
    steps(gpu_optimizer, moved, range(2, 4))
    for m, r in zip(moved, reference):
        torch.testing.assert_close(m.cpu(), r, rtol=1e-5, atol=1e-7)
        assert gpu_optimizer.state[m]["step"].device.type == "cuda"


def _problem(shapes, steps, seed=0):
    generator = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=generator).cuda() for s in shapes]
    grads = [[torch.randn(s, generator=generator).cuda() for s in shapes] for _ in range(steps)]
    return params, grads


@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
def test_steps_on_alternating_streams_stay_ordered(backend):
    """One runner's launches share a launch table, step counters and a done counter: a step on another stream than
    the previous one must wait for it (two launches' arrivals interleaving would fire a 'last block' early and leave
    the counter non-zero for every later step)."""
    shapes = [(70_001,), (4096,), (1,), (33, 65)]
    params, grads = _problem(shapes, 8)
    reference = [p.clone() for p in params]
    optimizer = FusedAdam(params, lr=1e-2, backend=backend)
    torch_optimizer = torch.optim.Adam(reference, lr=1e-2)
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    torch.cuda.synchronize()
    for step, step_grads in enumerate(grads):
        with torch.cuda.stream(streams[step % 2]):
            for p, g in zip(params, step_grads):
                p.grad = g
            optimizer.step()
    torch.cuda.synchronize()
    for step_grads in grads:
        for r, g in zip(reference, step_grads):
            r.grad = g
        torch_optimizer.step()
    for p, r in zip(params, reference):
        torch.testing.assert_close(p, r, rtol=1e-5, atol=1e-6)
        assert optimizer.state[p]["step"].item() == len(grads)
    runner = optimizer._plans[0].runners[0]
    assert runner._done_counter.item() == 0


@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
def test_hyperparameter_tensors_on_the_gpu_need_no_host_sync_and_capture(backend):
    """A float64 lr tensor and beta tensors on the GPU are converted and read on the device, never through float()
    (which would synchronize, and fail under capture): the step is captured and replays follow in-place updates."""
    params, grads = _problem([(1000,), (7, 9)], 6, seed=1)
    reference = [p.clone() for p in params]
    lr = torch.tensor(1e-2, dtype=torch.float64, device="cuda")
    betas = (torch.tensor(0.9, device="cuda"), torch.tensor(0.99, device="cuda"))
    optimizer = FusedAdam(params, lr=lr, betas=betas, capturable=True, backend=backend)
    torch_lr = torch.tensor(1e-2, device="cuda")
    torch_optimizer = torch.optim.Adam(reference, lr=torch_lr, betas=(0.9, 0.99), capturable=True)
    for p in params:
        p.grad = torch.zeros_like(p)
    def warm_up():
        for p, g in zip(params, grads[0]):
            p.grad.copy_(g)
        optimizer.step()

    graph = _capture_step(optimizer, warm_up)
    for step in range(1, 6):
        if step == 3:
            lr.fill_(5e-3)
        for p, g in zip(params, grads[step]):
            p.grad.copy_(g)
        graph.replay()
    for step in range(6):
        torch_lr.fill_(1e-2 if step < 3 else 5e-3)
        for r, g in zip(reference, grads[step]):
            r.grad = g.clone()
        torch_optimizer.step()
    torch.cuda.synchronize()
    for p, r in zip(params, reference):
        torch.testing.assert_close(p, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
def test_a_graph_captured_before_a_plan_rebuild_replays_on_memory_kept_alive(backend):
    """After capture, a gradient set change rebuilds the plan: the optimizer warns, keeps what the graph uses (launch
    table, counters, the captured gradients) alive, and a later replay touches only that memory."""
    import gc

    params, grads = _problem([(1000,), (300,)], 2, seed=2)
    optimizer = FusedAdam(params, lr=1e-2, capturable=True, backend=backend)
    for p, g in zip(params, grads[0]):
        p.grad = g.clone()
    graph = _capture_step(optimizer, optimizer.step)
    params[1].grad = None  # a new gradient set: the next eager step rebuilds the plan
    with pytest.warns(UserWarning, match="captured in a CUDA graph"):
        optimizer.step()
    gc.collect()
    torch.cuda.empty_cache()
    graph.replay()
    torch.cuda.synchronize()
    assert all(torch.isfinite(p).all() for p in params)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
def test_parameters_on_another_gpu_than_the_current_one(backend):
    torch.cuda.set_device(0)
    generator = torch.Generator().manual_seed(3)
    params = [torch.randn(5000, generator=generator).to("cuda:1")]
    reference = [p.clone() for p in params]
    optimizer = FusedAdam(params, lr=1e-2, backend=backend)
    torch_optimizer = torch.optim.Adam(reference, lr=1e-2)
    for _ in range(3):
        g = torch.randn(5000, generator=generator).to("cuda:1")
        params[0].grad, reference[0].grad = g.clone(), g.clone()
        optimizer.step()
        torch_optimizer.step()
    torch.cuda.synchronize(1)
    torch.testing.assert_close(params[0], reference[0], rtol=1e-5, atol=1e-6)
    assert torch.cuda.current_device() == 0


_FRESH_THREAD = """
import threading, torch
from fusedadam import FusedAdam
from fusedadam._native import native
p = torch.randn(5000, device="cuda:1")
p.grad = torch.randn(5000, device="cuda:1")
optimizer = FusedAdam([p], backend=__BACKEND__)
before = native().cuda_has_primary_context(0)
errors = []
def step():
    try:
        optimizer.step()
        torch.cuda.synchronize(1)
    except Exception as error:
        errors.append(error)
thread = threading.Thread(target=step)
thread.start()
thread.join()
assert not errors, errors
print(before, native().cuda_has_primary_context(0))
"""


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
def test_stepping_from_a_fresh_thread_creates_no_context_on_gpu_0(backend):
    """A thread that never used a GPU reads device 0 as current; restoring it after the launch on GPU 1 would
    create a context (~0.5 GB) on GPU 0 in every process of a one-GPU-per-process job."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _FRESH_THREAD.replace("__BACKEND__", repr(backend))],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    before, after = done.stdout.strip().splitlines()[-1].split()
    if before == "True":
        pytest.skip("torch itself made a context on GPU 0 before the step")
    assert after == "False"
