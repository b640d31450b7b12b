"""torch.compile: a compiled training step that calls optimizer.step() matches eager, with no graph break
inside the step (it is the custom op fusedadam::adam_step_), and a tensor lr changed by a scheduler every
step does not recompile."""
import pytest
import torch

from fusedadam import FusedAdamW
from fusedadam.custom_op import adam_step_

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # dynamo's notes on torch's own graph breaks


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def _train(model, optimizer, step_fn, steps):
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    data = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        step_fn(model, optimizer, data)
        schedule.step()
    return [p.detach().clone() for p in model.parameters()]


def _train_step(model, optimizer, data):
    loss = model(data).pow(2).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


@pytest.mark.parametrize("dtype, update, eight_bit", [(torch.float32, "nearest", False),
                                                      (torch.bfloat16, "master", False),
                                                      (torch.bfloat16, "kahan", False),
                                                      (torch.bfloat16, "stochastic", False),
                                                      (torch.float32, "nearest", True)],
                         ids=["fp32", "bf16-master", "bf16-kahan", "bf16-stochastic", "fp32-8bit"])
def test_opcheck(dtype, update, eight_bit):
    params = [torch.randn(300).to(dtype), torch.randn(3, 2).to(dtype)]
    state_dtype = torch.float32 if update == "master" else dtype
    masters = [p.float() for p in params] if update == "master" else []
    compensations = [torch.zeros_like(p) for p in params] if update == "kahan" else []
    if eight_bit:  # codes and one absmax per block of 256 (two blocks, one)
        moments = [[torch.randint(0, 120, p.shape, dtype=torch.uint8) for p in params] for _ in range(2)]
        absmaxes = [[torch.rand(-(-p.numel() // 256)) for p in params] for _ in range(2)] + [[]]
    else:
        moments = [[torch.randn_like(p, dtype=state_dtype) for p in params],
                   [torch.rand_like(p, dtype=state_dtype) for p in params]]
        absmaxes = [[], [], []]
    args = ([p.clone() for p in params], [torch.randn_like(p) for p in params], *moments, [], masters, compensations,
            *absmaxes, [torch.tensor(2.0), torch.tensor(2.0)], torch.tensor(1e-2), 0.9, 0.99, 1e-8, 0.1, False, False,
            True, "cpu", update, -5, [0, 1], None, None)
    torch.library.opcheck(torch.ops.fusedadam.adam_step_.default, args)
    adam_step_(*args)  # and it steps: the counters advanced in place
    assert [s.item() for s in args[10]] == [3.0, 3.0]


@pytest.mark.parametrize("options", [dict(master_weights=True), dict(kahan_summation=True),
                                     dict(rounding="stochastic", state_dtype=torch.float32)],
                         ids=["master", "kahan", "stochastic"])
def test_compiled_steps_of_the_precision_modes_equal_eager_ones(options):
    """The same gradients, one optimizer stepped through torch.compile (the custom op), one eagerly: the same bits."""
    compiled_params = [p.detach().to(torch.bfloat16) for p in _model().parameters()]
    eager_params = [p.clone() for p in compiled_params]
    compiled = FusedAdamW(compiled_params, lr=0.01, rounding_seed=3, **options)
    eager = FusedAdamW(eager_params, lr=0.01, rounding_seed=3, **options)
    step = torch.compile(compiled.step)
    for _ in range(3):
        for p, q in zip(compiled_params, eager_params):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        step()
        eager.step()
    for p, q in zip(compiled_params, eager_params):
        assert torch.equal(p, q)
        for key, value in eager.state[q].items():
            assert torch.equal(compiled.state[p][key], value), key


def test_compiled_training_step_matches_eager_without_breaking_the_step():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model = _model()
    eager = _train(model, FusedAdamW(model.parameters(), lr=torch.tensor(1e-2)), _train_step, 4)
    model = _model()
    compiled = _train(model, FusedAdamW(model.parameters(), lr=torch.tensor(1e-2)), torch.compile(_train_step), 4)
    model = _model()
    torchs = _train(model, torch.optim.AdamW(model.parameters(), lr=torch.tensor(1e-2), foreach=False), _train_step, 4)
    for a, b, c in zip(compiled, eager, torchs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        # and both are torch's AdamW: the two sides above share the kernel, so a numeric slip in it would match
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)
    breaks = "\n".join(torch._dynamo.utils.counters["graph_break"])
    assert "TensorTable" not in breaks and "_C" not in breaks and "adam_step" not in breaks, breaks


def test_a_tensor_lr_changed_by_a_scheduler_does_not_recompile():
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    model = _model()
    optimizer = FusedAdamW(model.parameters(), lr=torch.tensor(1e-2))
    step = torch.compile(_train_step, backend=counter)
    _train(model, optimizer, step, 2)
    frames = counter.frame_count
    _train(model, optimizer, step, 4)
    assert counter.frame_count == frames
