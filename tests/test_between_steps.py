"""Each change a user can make between steps, one at a time, on FusedAdam and on a torch.optim.Adam twin: both raise
the same kind of error, or both step to the same numbers. One row per change of issue 16's table (where fusedadam
once corrupted the heap or silently ignored the change) and the legitimate changes next to them.
tests/test_state_machine.py interleaves the same changes at random; these rows are the ones every run must see."""
import pytest
import torch

from fusedadam import FusedAdam
from specs import BACKEND_SPECS


def _replace_data(numel):
    def change(p, optimizer):
        p.data = torch.linspace(-1, 1, numel)
        p.grad = torch.linspace(1, -1, numel)
    return change


def _set_storage(numel):
    def change(p, optimizer):
        with torch.no_grad():
            p.set_(torch.linspace(-1, 1, numel))
    return change


def _replace_grad_data(numel):
    def change(p, optimizer):
        p.grad.data = torch.linspace(0.5, -0.5, numel)
    return change


def _replace_state(key, value):
    def change(p, optimizer):
        optimizer.state[p][key] = value.clone()
    return change


def _grad_in_place(p, optimizer):
    p.grad.mul_(-3)


def _model_to_double(p, optimizer):
    p.data = p.data.double()
    p.grad = p.grad.double()


CHANGES = {
    # refused by torch, so refused here, before anything is written
    "p.data of 8 elements": (_replace_data(8), RuntimeError),
    "set_ to 4096 elements": (_set_storage(4096), RuntimeError),
    "p.data of 2 elements": (_replace_data(2), RuntimeError),
    "p.grad.data of 2 elements": (_replace_grad_data(2), RuntimeError),
    "p.grad.data of 4096 elements": (_replace_grad_data(4096), RuntimeError),
    "exp_avg of 2 elements": (_replace_state("exp_avg", torch.zeros(2)), RuntimeError),
    # honoured by torch, so honoured here
    "p.data of the same shape": (_replace_data(6), None),
    "set_ to the same shape": (_set_storage(6), None),
    "p.grad.data of the same shape": (_replace_grad_data(6), None),
    "gradient changed in place": (_grad_in_place, None),
    "exp_avg reset to zeros": (_replace_state("exp_avg", torch.zeros(6)), None),
    "exp_avg_sq reset to zeros": (_replace_state("exp_avg_sq", torch.zeros(6)), None),
    "step restarted at 0": (_replace_state("step", torch.tensor(0.0)), None),
    "step moved to 100": (_replace_state("step", torch.tensor(100.0)), None),
}

BACKENDS = [pytest.param(spec.name, id=spec.name) for spec in BACKEND_SPECS
            if spec.device == "cpu" and spec.name in ("cpu", "cuda-host", "torch")]


def _twins(backend):
    start = torch.linspace(-0.7, 0.9, 6)
    mine, theirs = start.clone().requires_grad_(), start.clone().requires_grad_()
    kwargs = dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1)
    ours, torchs = FusedAdam([mine], backend=backend, **kwargs), torch.optim.Adam([theirs], foreach=False, **kwargs)
    for k in range(2):  # two steps: the second runs from the cached table
        for p, optimizer in ((mine, ours), (theirs, torchs)):
            p.grad = torch.linspace(0.3 + k, -0.2, 6)
            optimizer.step()
    return (mine, ours), (theirs, torchs)


def _outcome(p, optimizer, change):
    change(p, optimizer)
    before = (p.detach().clone(), {k: v.clone() for k, v in optimizer.state[p].items()})
    try:
        optimizer.step()
    except Exception as error:  # noqa: BLE001 - its kind is compared
        return error, before
    return None, before


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_a_change_between_steps_is_honoured_or_refused_like_torch(backend, change):
    spec = next(s for s in BACKEND_SPECS if s.name == backend and s.device == "cpu")
    if spec.skip_reason():
        pytest.skip(spec.skip_reason())
    apply, refused = CHANGES[change]
    (mine, ours), (theirs, torchs) = _twins(backend)
    our_error, (p_before, state_before) = _outcome(mine, ours, apply)
    their_error, _ = _outcome(theirs, torchs, apply)
    assert type(their_error) is (refused or type(None)), f"torch itself: {their_error!r}"
    if refused is not None:
        assert isinstance(our_error, refused), f"torch raised {their_error!r}, fusedadam {our_error!r}"
        assert "parameter 0" in str(our_error)
        # nothing of ours was written
        assert torch.equal(mine.detach(), p_before)
        for key, value in state_before.items():
            assert torch.equal(ours.state[mine][key], value), key
        return
    assert our_error is None, f"torch stepped, fusedadam raised {our_error!r}"
    for _ in range(2):  # and the step after it, from the table rebuilt or kept
        torch.testing.assert_close(mine.detach(), theirs.detach(), rtol=1e-6, atol=1e-7)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(ours.state[mine][key], torchs.state[theirs][key], rtol=1e-6, atol=1e-7)
        for p, optimizer in ((mine, ours), (theirs, torchs)):
            optimizer.step()


def test_model_to_double_converts_the_state_and_steps_in_double():
    """model.to(torch.float64) between steps: torch's Adam fails on its float32 moments; fusedadam converts them (a
    dtype change it honours, as it does for its precision options) and steps as torch does from converted state."""
    (mine, ours), (theirs, torchs) = _twins("cpu")
    for p, optimizer in ((mine, ours), (theirs, torchs)):
        _model_to_double(p, optimizer)
    # From here both start from our values (the float32 steps before may differ in the last bit, which float64
    # steps would then show far above float64's rounding), torch's moments converted by hand.
    with torch.no_grad():
        theirs.copy_(mine)
    for key in ("exp_avg", "exp_avg_sq"):
        torchs.state[theirs][key] = ours.state[mine][key].double()
    for _ in range(2):
        ours.step()
        torchs.step()
        assert mine.dtype == ours.state[mine]["exp_avg"].dtype == torch.float64
        torch.testing.assert_close(mine.detach(), theirs.detach(), rtol=1e-12, atol=1e-14)
