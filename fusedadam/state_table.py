"""optimizer.state that counts its own changes, so that a step knows in O(1) whether the state its cached plans were
built from is still the state the user sees.

A plan holds the addresses of every state tensor (exp_avg, exp_avg_sq, ...). A user may replace any of them between
steps (`opt.state[p]["exp_avg"] = torch.zeros_like(p)` after pruning, `opt.state[p]["step"] = torch.tensor(0.)` for a
warm restart, `opt.state[p] = {}`), and torch.optim.Adam honours that at the next step. Re-reading every state dict
at every step would cost O(tensors) Python work; instead every mutation of the table or of one parameter's dict
advances `generation`, and the optimizer re-checks its plans only when it moved.

Torch's own code sees plain dicts: these are dict / defaultdict subclasses; state_dict() hands out plain dicts, a
ParamState pickles as an OrderedDict (what torch.load(weights_only=True) accepts) and the table as a defaultdict, as
torch's own; an optimizer restored from them wraps them again."""
from __future__ import annotations

from collections import OrderedDict, defaultdict


class ParamState(dict):
    """One parameter's state (torch's dict of "step", "exp_avg", ...), telling its table of every change."""

    __slots__ = ("_table",)

    def __init__(self, table: "StateTable", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._table = table

    def _changed(self) -> None:
        self._table.generation += 1

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key):
        super().__delitem__(key)
        self._changed()

    def __ior__(self, other):
        result = super().__ior__(other)
        self._changed()
        return result

    def clear(self):
        super().clear()
        self._changed()

    def pop(self, *args):
        result = super().pop(*args)
        self._changed()
        return result

    def popitem(self):
        result = super().popitem()
        self._changed()
        return result

    def setdefault(self, key, default=None):
        result = super().setdefault(key, default)
        self._changed()
        return result

    def update(self, *args, **kwargs):
        super().update(*args, **kwargs)
        self._changed()

    def __reduce__(self):
        # Saved as an OrderedDict: torch.load(weights_only=True) takes that (not a call of dict, nor this class), and
        # loading needs no fusedadam.
        return OrderedDict, (), None, None, iter(self.items())


class StateTable(defaultdict):
    """param -> ParamState. A dict assigned to a parameter is copied into a ParamState (so later changes to the
    assigned object itself are not seen: change it through opt.state[p])."""

    def __init__(self, entries=()):
        super().__init__()
        self.default_factory = self._fresh
        self.generation = 0
        for key, value in dict(entries).items():
            self[key] = value

    def _fresh(self) -> ParamState:
        return ParamState(self)

    def __setitem__(self, key, value):
        if not (isinstance(value, ParamState) and value._table is self):
            value = ParamState(self, value)
        super().__setitem__(key, value)
        self.generation += 1

    def __delitem__(self, key):
        super().__delitem__(key)
        self.generation += 1

    def clear(self):
        super().clear()
        self.generation += 1

    def pop(self, *args):
        result = super().pop(*args)
        self.generation += 1
        return result

    def popitem(self):
        result = super().popitem()
        self.generation += 1
        return result

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = {} if default is None else default
        return self[key]

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other):
        self.update(other)
        return self

    def __reduce__(self):
        return defaultdict, (dict,), None, None, ((key, dict(value)) for key, value in self.items())

    def __copy__(self):
        return defaultdict(dict, ((key, value) for key, value in self.items()))

    def __deepcopy__(self, memo):
        import copy

        return defaultdict(dict, ((copy.deepcopy(key, memo), copy.deepcopy(dict(value), memo))
                                  for key, value in self.items()))
