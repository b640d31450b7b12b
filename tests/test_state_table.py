"""optimizer.state counts its own changes (fusedadam/state_table.py): every way of replacing a state entry is seen,
a step checks the state against its plans only when something changed, and the table stays torch's format."""
import copy
import io
from collections import OrderedDict

import pytest
import torch

from fusedadam import FusedAdam
from fusedadam.optimizer import _GroupPlan
from fusedadam.state_table import StateTable

MUTATIONS = {
    "setitem": lambda d: d.__setitem__("exp_avg", torch.zeros(3)),
    "delitem": lambda d: d.__delitem__("exp_avg"),
    "pop": lambda d: d.pop("exp_avg"),
    "popitem": lambda d: d.popitem(),
    "clear": lambda d: d.clear(),
    "update": lambda d: d.update(exp_avg=torch.zeros(3)),
    "setdefault": lambda d: d.setdefault("other", 1),
    "ior": lambda d: d.__ior__({"exp_avg": torch.zeros(3)}),
}


@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_every_change_to_a_parameters_state_is_counted(mutate):
    table = StateTable()
    p = torch.zeros(3)
    table[p] = {"step": torch.tensor(1.0), "exp_avg": torch.ones(3)}
    before = table.generation
    mutate(table[p])
    assert table.generation > before


def test_every_change_to_the_table_is_counted_and_assigned_dicts_are_tracked():
    table = StateTable()
    p, q = torch.zeros(3), torch.zeros(3)
    for change in (lambda: table.__setitem__(p, {"a": 1}), lambda: table[q], lambda: table.pop(q),
                   lambda: table.update({q: {}}), lambda: table.__delitem__(q), lambda: table.clear()):
        before = table.generation
        change()
        assert table.generation > before
    table[p] = {"a": 1}
    before = table.generation
    table[p]["a"] = 2  # the assigned dict was taken over: changes through the table are seen
    assert table.generation > before


def test_state_saves_and_loads_as_torchs_plain_containers():
    p = torch.randn(5)
    p.grad = torch.randn(5)
    optimizer = FusedAdam([p])
    optimizer.step()
    buffer = io.BytesIO()
    torch.save(optimizer.state[p], buffer)  # a ParamState saves as an OrderedDict: weights_only loads it
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert type(loaded) is OrderedDict and set(loaded) == {"step", "exp_avg", "exp_avg_sq"}
    assert all(type(entry) is dict for entry in optimizer.state_dict()["state"].values())
    assert type(copy.deepcopy(optimizer).state) is StateTable  # restored optimizers wrap their state again


def test_a_step_rechecks_state_only_after_a_change(monkeypatch):
    checks = []
    real = _GroupPlan.states_unchanged
    monkeypatch.setattr(_GroupPlan, "states_unchanged", lambda self, state: checks.append(1) or real(self, state))
    params = [torch.randn(4) for _ in range(3)]
    for p in params:
        p.grad = torch.randn(4)
    optimizer = FusedAdam(params)
    for _ in range(3):
        optimizer.step()
    assert checks == []  # O(1) per step while nothing changes
    optimizer.state[params[1]]["exp_avg"] = torch.zeros(4)
    optimizer.step()
    assert checks == [1]
    optimizer.step()
    assert checks == [1]
