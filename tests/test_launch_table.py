"""The launch table (csrc/launch_table.h) that the cuda and triton kernels walk: its rows name every tensor's
arrays and numel, its chunk rows cover every element exactly once, and it is rewritten only when a gradient
moves."""
import pytest
import torch

import fusedadam._C as C
from fusedadam import FusedAdam
from fusedadam.backends.base import StateLayout
from fusedadam.backends.native_table import PartitionTable, gather_steps
from fusedadam.precision import ABSMAX_KEYS, MOMENT_KEYS, Precision
from fusedadam.quantization import num_blocks
from specs import BACKEND_SPECS, require

LAYOUT = C.launch_table


def _table(shapes, amsgrad=False):
    params = [torch.randn(s) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    states = [{"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p),
               **({"max_exp_avg_sq": torch.zeros_like(p)} if amsgrad else {})} for p in params]
    layout = StateLayout(amsgrad, Precision(torch.float32), salts=tuple(range(len(params))))
    table = PartitionTable(params, states, layout, gather_steps(states, torch.device("cpu")))
    assert table.gather_grads()
    return params, states, table


def _write(table, chunk_size):
    words = table.native.launch_table_words(chunk_size)
    buffer = torch.full((words,), -7, dtype=torch.int64)
    num_chunks, aligned = table.native.write_launch_table(buffer.data_ptr(), words, chunk_size)
    return buffer, num_chunks, aligned


def test_tensor_rows_hold_every_address_and_numel():
    params, states, table = _table([(130,), (0,), (3, 5)], amsgrad=True)
    buffer, _, _ = _write(table, 64)
    rows = buffer[:len(params) * LAYOUT.TENSOR_COLUMNS].view(len(params), LAYOUT.TENSOR_COLUMNS)
    for row, p, s in zip(rows.tolist(), params, states):
        assert row[LAYOUT.PARAM] == p.data_ptr() and row[LAYOUT.GRAD] == p.grad.data_ptr()
        assert row[LAYOUT.EXP_AVG] == s["exp_avg"].data_ptr()
        assert row[LAYOUT.EXP_AVG_SQ] == s["exp_avg_sq"].data_ptr()
        assert row[LAYOUT.MAX_EXP_AVG_SQ] == s["max_exp_avg_sq"].data_ptr()
        assert row[LAYOUT.NUMEL] == p.numel()
        assert row[LAYOUT.MASTER] == 0 and row[LAYOUT.COMPENSATION] == 0


def test_rows_of_master_weights_and_kahan_hold_their_buffers_and_salts():
    for update, key in (("master", "master_param"), ("kahan", "kahan_compensation")):
        params = [torch.randn(s).to(torch.bfloat16) for s in ((70,), (3, 4))]
        for p in params:
            p.grad = torch.randn_like(p)
        dtype = torch.float32 if update == "master" else torch.bfloat16
        states = [{"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p),
                   key: torch.zeros_like(p, dtype=dtype)} for p in params]
        layout = StateLayout(False, Precision(torch.bfloat16, update), salts=(11, 2**32 + 5))
        table = PartitionTable(params, states, layout, gather_steps(states, torch.device("cpu")))
        assert table.gather_grads()
        buffer, _, _ = _write(table, 64)
        rows = buffer[:len(params) * LAYOUT.TENSOR_COLUMNS].view(len(params), LAYOUT.TENSOR_COLUMNS).tolist()
        column = LAYOUT.MASTER if update == "master" else LAYOUT.COMPENSATION
        other = LAYOUT.COMPENSATION if update == "master" else LAYOUT.MASTER
        for row, s in zip(rows, states):
            assert row[column] == s[key].data_ptr() and row[other] == 0
        assert [row[LAYOUT.SALT] for row in rows] == [11, 5]  # salts are 32-bit


def test_rows_of_8bit_moments_hold_each_moments_absmax_and_chunks_are_whole_blocks():
    """Each moment's block absmaxes have their column; the chunks of a table of 8-bit moments must be whole
    quantization blocks (one program writes each absmax), so another chunk size is refused before anything is
    written."""
    n = 1000
    p = torch.randn(n)
    p.grad = torch.randn(n)
    state = {"step": torch.tensor(0.0), **{key: torch.zeros(n, dtype=torch.uint8) for key in MOMENT_KEYS},
             **{ABSMAX_KEYS[key]: torch.zeros(num_blocks(n)) for key in MOMENT_KEYS}}
    layout = StateLayout(True, Precision(torch.uint8), salts=(0,))
    table = PartitionTable([p], [state], layout, gather_steps([state], torch.device("cpu")))
    assert table.gather_grads()
    row = _write(table, 256)[0][:LAYOUT.TENSOR_COLUMNS].tolist()
    for key, column in (("exp_avg", LAYOUT.EXP_AVG_ABSMAX), ("exp_avg_sq", LAYOUT.EXP_AVG_SQ_ABSMAX),
                        ("max_exp_avg_sq", LAYOUT.MAX_EXP_AVG_SQ_ABSMAX)):
        assert row[column] == state[ABSMAX_KEYS[key]].data_ptr(), key
    with pytest.raises(ValueError, match="8-bit moments need chunk_size a multiple of 256"):
        _write(table, 64)
    assert _write(_table([(10,)])[2], 64)[0][LAYOUT.EXP_AVG_ABSMAX] == 0  # no 8-bit moments: no absmax


def test_chunk_rows_cover_every_element_once():
    shapes = [(130,), (0,), (64,), (1,), (3, 50)]
    params, _, table = _table(shapes)
    buffer, num_chunks, _ = _write(table, 64)
    chunks = buffer[len(params) * LAYOUT.TENSOR_COLUMNS:].view(-1, LAYOUT.CHUNK_COLUMNS)
    assert len(chunks) == num_chunks == 3 + 0 + 1 + 1 + 3
    covered = [torch.zeros(p.numel(), dtype=torch.int32) for p in params]
    for tensor, first in chunks[:, [LAYOUT.TENSOR_INDEX, LAYOUT.FIRST_ELEMENT]].tolist():
        assert first % 64 == 0
        covered[tensor][first:first + 64] += 1
    assert all(bool((c == 1).all()) for c in covered)


def test_alignment_is_reported():
    storage = torch.randn(1000)
    p = storage[1:101]  # 4 bytes past a 16-byte boundary
    p.grad = torch.randn(100)
    states = [{"step": torch.tensor(0.0), "exp_avg": torch.zeros(100), "exp_avg_sq": torch.zeros(100)}]
    layout = StateLayout(False, Precision(torch.float32), salts=(0,))
    table = PartitionTable([p], states, layout, gather_steps(states, torch.device("cpu")))
    assert table.gather_grads()
    assert _write(table, 64)[2] is False
    assert _write(_table([(100,)])[2], 64)[2] is True


def test_grad_version_changes_only_when_a_gradient_moves():
    params, _, table = _table([(10,), (20,)])
    version = table.native.grad_version
    assert table.gather_grads() and table.native.grad_version == version  # same gradients
    params[1].grad = params[1].grad.clone()
    assert table.gather_grads() and table.native.grad_version == version + 1


@pytest.mark.parametrize("backend", ["triton", "cuda-host"])
def test_a_device_backend_steps_many_tensors_in_one_launch(monkeypatch, backend):
    """Every chunk of every tensor goes through one kernel launch per step (the triton backend in the interpreter,
    and the CUDA kernel played on the host; on a GPU the same table feeds both)."""
    from fusedadam.backends import cuda_host
    from fusedadam.triton_kernels import multi_tensor_adam

    require(next(s for s in BACKEND_SPECS if s.name == backend))
    module, name = {"triton": (multi_tensor_adam, "launch_multi_tensor_adam"), "cuda-host": (cuda_host, "_launch")}[backend]
    launches = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        launch = kwargs["launch"] if "launch" in kwargs else args[0]
        launches.append(launch.num_chunks)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    params = [torch.randn(n) for n in (40_000, 3, 17, 1)]
    optimizer = FusedAdam(params, backend=backend)
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer.step()
    optimizer.step()
    assert launches == [3 + 1 + 1 + 1] * 2


def test_handing_over_the_same_gradients_keeps_the_table():
    """FSDP2's local shards are handed over every step (set_grads): the table is uploaded again only when an
    address changed."""
    params, _, table = _table([(10,), (20,)])
    version = table.native.grad_version
    table.set_grads([p.grad for p in params])
    assert table.native.grad_version == version
    table.set_grads([params[0].grad, params[1].grad.clone()])
    assert table.native.grad_version == version + 1
