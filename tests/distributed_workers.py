"""What each rank runs in tests/test_distributed.py (2 processes, gloo, loopback). A failed assertion in a
rank fails the test with that rank's traceback."""
import functools
import gc
import os

import torch
import torch.distributed as dist
from torch import nn

from fusedadam import FusedAdamW

STEPS = 3
OPTIONS = dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)


def _distributed(body):
    """A worker: body(rank, world, *args) between init_process_group and the group's teardown. What the body built
    (models, DDP's reducer, optimizers: each holds the process group) is collected before the group is destroyed, and
    every rank waits for the others at a barrier first: a group whose last references are dropped at interpreter
    finalization, or a rank that exits while its peer's gloo threads still talk to it, aborts the process ("terminate
    called without an active exception"), as CI and this machine saw."""
    @functools.wraps(body)
    def worker(rank: int, world: int, port: int, *args) -> None:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        dist.init_process_group("gloo", rank=rank, world_size=world)
        body(rank, world, *args)
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()

    return worker


def _model() -> nn.Module:
    """Layers whose parameters shard unevenly over 2 ranks: 3 rows split 2 + 1, one element split 1 + 0."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    model.register_parameter("scale", nn.Parameter(torch.ones(1)))
    return model


def _loss(model: nn.Module, data: torch.Tensor) -> torch.Tensor:
    out = model(data.to(next(model.parameters()).dtype))
    scale = model.module.scale if hasattr(model, "module") else model.scale
    return (out * scale).pow(2).mean()


def _wide_model() -> nn.Module:
    """A weight that keeps 8-bit moments (at least 4096 elements) on every rank of 2, its local shards (46 and 45 rows
    of 96: 17.25 and 16.875 blocks of 256) ending mid-block; a small weight (fp32 moments) and an empty shard beside."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(96, 91), nn.Tanh(), nn.Linear(91, 3))
    model.register_parameter("scale", nn.Parameter(torch.ones(1)))
    return model


def _data(rank: int, step: int, features: int = 8) -> torch.Tensor:
    return torch.randn(4, features, generator=torch.Generator().manual_seed(100 * rank + step))


def _train(model, optimizer, rank, steps=STEPS, first=0):
    features = (model.module if hasattr(model, "module") else model)[0].in_features
    for step in range(first, first + steps):
        optimizer.zero_grad()
        _loss(model, _data(rank, step, features)).backward()
        optimizer.step()


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _same_on_every_rank(t: torch.Tensor) -> bool:
    gathered = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, t)
    return all(torch.equal(g, gathered[0]) for g in gathered)


@_distributed
def ddp(rank: int, world: int) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP

    ours, theirs = DDP(_model()), DDP(_model())
    _train(ours, FusedAdamW(ours.parameters(), backend="cpu", **OPTIONS), rank)
    _train(theirs, torch.optim.AdamW(theirs.parameters(), **OPTIONS), rank)
    assert _same_on_every_rank(_flat(ours)), "ranks diverged"
    torch.testing.assert_close(_flat(ours), _flat(theirs), rtol=1e-5, atol=1e-7)


@_distributed
def zero(rank: int, world: int) -> None:
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    ours, theirs = DDP(_model()), DDP(_model())
    _train(ours, ZeroRedundancyOptimizer(ours.parameters(), optimizer_class=FusedAdamW, **OPTIONS), rank)
    _train(theirs, ZeroRedundancyOptimizer(theirs.parameters(), optimizer_class=torch.optim.AdamW, **OPTIONS), rank)
    assert _same_on_every_rank(_flat(ours)), "ranks diverged"
    torch.testing.assert_close(_flat(ours), _flat(theirs), rtol=1e-5, atol=1e-7)


def _sharded_model(mesh, dtype=torch.float32, make=_model):
    from torch.distributed.fsdp import fully_shard

    model = make().to(dtype)
    for layer in (model[0], model[2]):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _full(model) -> torch.Tensor:
    return torch.cat([p.full_tensor().reshape(-1) for p in model.parameters()])


@_distributed
def fsdp2(rank: int, world: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    mesh = init_device_mesh("cpu", (world,))
    ours, theirs = _sharded_model(mesh), _sharded_model(mesh)
    assert any(p.to_local().numel() == 0 for p in ours.parameters()) == (rank == 1), "expected an empty shard"
    optimizer = FusedAdamW(ours.parameters(), **OPTIONS)
    assert set(optimizer.backends[0].values()) == {"cpu"}, optimizer.backends  # native, on the local shards
    _train(ours, optimizer, rank)
    _train(theirs, torch.optim.AdamW(theirs.parameters(), **OPTIONS), rank)
    torch.testing.assert_close(_full(ours), _full(theirs), rtol=1e-5, atol=1e-7)
    state = optimizer.state[next(ours.parameters())]
    assert isinstance(state["exp_avg"], DTensor) and state["step"].item() == STEPS


@_distributed
def dcp_round_trip(rank: int, world: int, folder: str, variant: str = "fp32") -> None:
    """get/set_state_dict through torch.distributed.checkpoint: a restored model and optimizer continue
    exactly as the originals do. variant "master_weights": a bf16 model whose fp32 master copies are DTensors
    (local shards stepped natively) and survive the checkpoint at full precision. "8bit": 8-bit moments, their codes
    and each local shard's absmaxes restored bit for bit."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    mesh = init_device_mesh("cpu", (world,))
    master_weights = variant == "master_weights"
    dtype = torch.bfloat16 if master_weights else torch.float32
    make = _wide_model if variant == "8bit" else _model
    options = dict(OPTIONS, master_weights=master_weights, state_dtype="8bit" if variant == "8bit" else None)
    original = _sharded_model(mesh, dtype, make)
    optimizer = FusedAdamW(original.parameters(), **options)
    _train(original, optimizer, rank)
    if master_weights:
        for p in original.parameters():
            master = optimizer.state[p]["master_param"]
            assert isinstance(master, DTensor) and master.dtype == torch.float32
            assert torch.equal(p.full_tensor(), master.full_tensor().to(torch.bfloat16))
    model_state, optimizer_state = get_state_dict(original, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=folder)

    restored = _sharded_model(mesh, dtype, make)
    restored_optimizer = FusedAdamW(restored.parameters(), **options)
    model_state, optimizer_state = get_state_dict(restored, restored_optimizer)
    loaded = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(loaded, checkpoint_id=folder)
    set_state_dict(restored, restored_optimizer, model_state_dict=loaded["model"],
                   optim_state_dict=loaded["optimizer"])
    if variant == "8bit":
        for p, q in zip(original.parameters(), restored.parameters()):
            for key, value in optimizer.state[p].items():
                if key != "step":
                    assert torch.equal(value.to_local(), restored_optimizer.state[q][key].to_local()), key

    _train(original, optimizer, rank, steps=2, first=STEPS)
    _train(restored, restored_optimizer, rank, steps=2, first=STEPS)
    assert torch.equal(_full(original), _full(restored))
    if master_weights:
        for p, q in zip(original.parameters(), restored.parameters()):
            assert torch.equal(optimizer.state[p]["master_param"].full_tensor(),
                               restored_optimizer.state[q]["master_param"].full_tensor())
    assert restored_optimizer.state[next(restored.parameters())]["step"].item() == STEPS + 2


@_distributed
def fsdp2_eight_bit(rank: int, world: int, hybrid: bool = False) -> None:
    """8-bit moments under FSDP2: each rank's local shard steps exactly as the same tensor stepped alone by FusedAdamW
    would (its blocks are its own shard's), its absmaxes one row of a DTensor; a torch.optim.AdamW checkpoint is
    quantized shard by shard on load; to_torch_state_dict decodes to DTensor moments torch.optim.AdamW loads. With
    hybrid, HSDP's placements (Replicate(), Shard(0)) on a (1, world) mesh."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Replicate, Shard

    from fusedadam import to_torch_state_dict

    mesh = (init_device_mesh("cpu", (1, world), mesh_dim_names=("replicate", "shard")) if hybrid
            else init_device_mesh("cpu", (world,)))
    model = _sharded_model(mesh, make=_wide_model)
    params = list(model.parameters())
    assert all(p.placements == ((Replicate(), Shard(0)) if hybrid else (Shard(0),)) for p in params)
    wide = next(i for i, p in enumerate(params) if p is model[0].weight)
    assert params[wide].numel() >= 4096 and params[wide].to_local().numel() % 256 != 0
    assert any(p.to_local().numel() == 0 for p in params) == (rank == 1), "expected an empty shard"
    alone = [p.to_local().detach().clone() for p in params]
    eight_bit = dict(OPTIONS, state_dtype="8bit")
    optimizer, alone_optimizer = FusedAdamW(params, **eight_bit), FusedAdamW(alone, **eight_bit)
    assert set(optimizer.backends[0].values()) == {"cpu"}, optimizer.backends

    def step_both(step: int) -> None:
        optimizer.zero_grad()
        _loss(model, _data(rank, step, 96)).backward()
        for a, p in zip(alone, params):
            a.grad = p.grad.to_local().clone()
        optimizer.step()
        alone_optimizer.step()

    def same_as_alone() -> None:
        for p, a in zip(params, alone):
            assert torch.equal(p.to_local(), a)
            ours, theirs = optimizer.state[p], alone_optimizer.state[a]
            assert set(ours) == set(theirs), (set(ours), set(theirs))
            for key in ("exp_avg", "exp_avg_sq"):
                assert isinstance(ours[key], DTensor) and ours[key].placements == p.placements
                assert torch.equal(ours[key].to_local(), theirs[key]), key
            if "exp_avg_absmax" in ours:  # the 8-bit weight; the small ones keep fp32 moments, as alone
                row = ours["exp_avg_absmax"].to_local()
                assert ours["exp_avg_absmax"].shape == (world, 18) and row.shape == (1, 18)
                assert ours["exp_avg_absmax"].placements == ((Replicate(), Shard(0)) if hybrid else (Shard(0),))
                assert torch.equal(row[0, :theirs["exp_avg_absmax"].numel()], theirs["exp_avg_absmax"])
                assert not row[0, theirs["exp_avg_absmax"].numel():].any()

    for step in range(STEPS):
        step_both(step)
    assert optimizer.state[params[wide]]["exp_avg"].dtype == torch.uint8
    same_as_alone()

    # torch.optim.AdamW's checkpoint (fp32 DTensor moments) into 8-bit moments, against the same plain tensors'.
    torch_model = _sharded_model(mesh, make=_wide_model)
    torch_optimizer = torch.optim.AdamW(torch_model.parameters(), **OPTIONS)
    _train(torch_model, torch_optimizer, rank)
    saved = torch_optimizer.state_dict()
    optimizer.load_state_dict(saved)
    alone_optimizer.load_state_dict({**saved, "state": {
        pid: {k: v.to_local() if isinstance(v, DTensor) else v for k, v in entry.items()}
        for pid, entry in saved["state"].items()}})
    step_both(STEPS)
    same_as_alone()

    converted = to_torch_state_dict(optimizer.state_dict())
    exp_avg = converted["state"][wide]["exp_avg"]
    assert isinstance(exp_avg, DTensor) and exp_avg.dtype == torch.float32
    assert exp_avg.placements == params[wide].placements and "exp_avg_absmax" not in converted["state"][wide]
    decoded = to_torch_state_dict(alone_optimizer.state_dict())["state"][wide]["exp_avg"]
    assert torch.equal(exp_avg.to_local(), decoded)
    torch_optimizer.load_state_dict(converted)
    _train(torch_model, torch_optimizer, rank, steps=1, first=STEPS)

    # Bad inputs, refused before anything moves: a plain absmax for a DTensor moment, and placements that shard a
    # parameter over two mesh dimensions (whose local blocks no one row per shard describes).
    state = optimizer.state[params[wide]]
    before = {key: value.to_local().clone() for key, value in state.items() if key != "step"}
    weight_before, rows = params[wide].to_local().clone(), state["exp_avg_absmax"]
    state["exp_avg_absmax"] = rows.full_tensor()
    _loss(model, _data(rank, 0, 96)).backward()
    try:
        optimizer.step()
        raise AssertionError("a plain absmax for a DTensor parameter's 8-bit moments was accepted")
    except RuntimeError as error:
        assert "exp_avg_absmax" in str(error) and "local shard" in str(error), error
    assert torch.equal(params[wide].to_local(), weight_before)
    state["exp_avg_absmax"] = rows
    assert all(torch.equal(state[key].to_local(), value) for key, value in before.items())

    from torch.distributed.tensor import distribute_tensor

    square = init_device_mesh("cpu", (world, 1), mesh_dim_names=("a", "b"))
    twice_sharded = distribute_tensor(torch.randn(64, 128), square, [Shard(0), Shard(1)]).requires_grad_()
    twice_sharded.grad = distribute_tensor(torch.randn(64, 128), square, [Shard(0), Shard(1)])
    try:
        FusedAdamW([twice_sharded], state_dtype="8bit").step()
        raise AssertionError("8-bit moments were accepted for a parameter sharded over two mesh dimensions")
    except ValueError as error:
        assert "state_dtype='8bit'" in str(error) and "more than one mesh dimension" in str(error), error
