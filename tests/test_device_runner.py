"""The device runner's bookkeeping that does not need a GPU, checked on the host-played CUDA kernel (cuda-host):
hyperparameters as tensors are read by the kernel (converted on the device when not a float32 scalar), and a plan
whose step was captured in a CUDA graph stays alive when the optimizer rebuilds it. (What needs a GPU, streams and
devices, is in tests/test_gpu.py.)"""
import pytest
import torch

from fusedadam import FusedAdam
from fusedadam.backends.device import DeviceRunner
from specs import BACKEND_SPECS, require

CUDA_HOST = next(s for s in BACKEND_SPECS if s.name == "cuda-host")


@pytest.fixture(autouse=True)
def _cuda_host():
    require(CUDA_HOST)


def test_tensor_hyperparameters_on_the_kernels_device_are_read_by_the_kernel(monkeypatch):
    """Tensors on the kernel's device reach the kernel as float32 scalars on that device, converted there when they
    are not (a float64 or 1-element tensor: no float(), which would synchronize a GPU); a Python float reaches it as
    a number."""
    from fusedadam.backends import cuda_host

    seen = []
    real = cuda_host._launch
    monkeypatch.setattr(cuda_host, "_launch", lambda launch: seen.append(launch) or real(launch))
    p = torch.randn(100)
    p.grad = torch.randn(100)
    betas = (torch.tensor(0.9), torch.tensor([0.99], dtype=torch.float64))
    FusedAdam([p], lr=1e-2, betas=betas, backend="cuda-host").step()
    launch = seen[-1]
    assert launch.lr_tensor is None and launch.lr == 1e-2
    assert launch.beta1_tensor is betas[0]  # already a float32 scalar on the device: read as it is
    assert launch.beta2_tensor.dtype == torch.float32 and launch.beta2_tensor.dim() == 0
    assert launch.beta2_tensor.item() == pytest.approx(0.99)

    lr = torch.tensor([1e-2], dtype=torch.float64)
    FusedAdam([p], lr=lr, backend="cuda-host").step()
    launch = seen[-1]
    assert launch.lr == 0.0 and launch.lr_tensor.dtype == torch.float32 and launch.lr_tensor.dim() == 0
    assert launch.beta1_tensor is None and launch.beta1 == 0.9


def _captured_optimizer():
    params = [torch.randn(50), torch.randn(60)]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = FusedAdam(params, backend="cuda-host")
    optimizer.step()
    runner = optimizer._plans[0].runners[0]
    assert isinstance(runner, DeviceRunner) and not runner.captured
    runner.captured_grads = runner._table.grads()  # what a launch under CUDA graph capture records
    return params, optimizer, runner


def test_a_captured_plan_stays_alive_when_its_gradients_change():
    params, optimizer, runner = _captured_optimizer()
    params[1].grad = None
    with pytest.warns(UserWarning, match="param group 0 was captured in a CUDA graph.*parameters, gradients or state changed"):
        optimizer.step()
    assert optimizer._captured_plans and optimizer._captured_plans[0].runners[0] is runner
    assert optimizer._plans[0].runners[0] is not runner


def test_a_captured_plan_stays_alive_when_a_state_dict_is_loaded():
    params, optimizer, runner = _captured_optimizer()
    with pytest.warns(UserWarning, match="captured in a CUDA graph.*state was replaced"):
        optimizer.load_state_dict(optimizer.state_dict())
    assert optimizer._captured_plans[0].runners[0] is runner


def test_plans_never_captured_are_simply_dropped(recwarn):
    params = [torch.randn(50)]
    params[0].grad = torch.randn(50)
    optimizer = FusedAdam(params, backend="cuda-host")
    optimizer.step()
    optimizer.load_state_dict(optimizer.state_dict())
    optimizer.step()
    assert not optimizer._captured_plans and not [w for w in recwarn if "CUDA graph" in str(w.message)]
