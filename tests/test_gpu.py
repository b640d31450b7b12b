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
                              torch.float32, None, operand_scales(problem, mode))

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

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up, as torch.cuda.graph asks: builds the plan and launch table
        for step in range(2):
            load(step)
            optimizer.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        optimizer.step()
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
