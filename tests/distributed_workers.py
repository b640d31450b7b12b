"""What each rank runs in tests/test_distributed.py (2 processes, gloo, loopback). A failed assertion in a
rank fails the test with that rank's traceback."""
import os

import torch
import torch.distributed as dist
from torch import nn

from fusedadam import FusedAdamW

STEPS = 3
OPTIONS = dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)


def _init(rank: int, world: int, port: int) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)


def _finish() -> None:
    """Every rank has finished its collectives before any tears gloo down: a rank that exits while its peer's
    gloo threads still talk to it aborts ("terminate called without an active exception"), as CI saw once."""
    dist.barrier()
    dist.destroy_process_group()


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


def _data(rank: int, step: int) -> torch.Tensor:
    return torch.randn(4, 8, generator=torch.Generator().manual_seed(100 * rank + step))


def _train(model, optimizer, rank, steps=STEPS, first=0):
    for step in range(first, first + steps):
        optimizer.zero_grad()
        _loss(model, _data(rank, step)).backward()
        optimizer.step()


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _same_on_every_rank(t: torch.Tensor) -> bool:
    gathered = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, t)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def ddp(rank: int, world: int, port: int) -> None:
    _init(rank, world, port)
    from torch.nn.parallel import DistributedDataParallel as DDP

    ours, theirs = DDP(_model()), DDP(_model())
    _train(ours, FusedAdamW(ours.parameters(), backend="cpu", **OPTIONS), rank)
    _train(theirs, torch.optim.AdamW(theirs.parameters(), **OPTIONS), rank)
    assert _same_on_every_rank(_flat(ours)), "ranks diverged"
    torch.testing.assert_close(_flat(ours), _flat(theirs), rtol=1e-5, atol=1e-7)
    _finish()


def zero(rank: int, world: int, port: int) -> None:
    _init(rank, world, port)
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    ours, theirs = DDP(_model()), DDP(_model())
    _train(ours, ZeroRedundancyOptimizer(ours.parameters(), optimizer_class=FusedAdamW, **OPTIONS), rank)
    _train(theirs, ZeroRedundancyOptimizer(theirs.parameters(), optimizer_class=torch.optim.AdamW, **OPTIONS), rank)
    assert _same_on_every_rank(_flat(ours)), "ranks diverged"
    torch.testing.assert_close(_flat(ours), _flat(theirs), rtol=1e-5, atol=1e-7)
    _finish()


def _sharded_model(mesh, dtype=torch.float32):
    from torch.distributed.fsdp import fully_shard

    model = _model().to(dtype)
    for layer in (model[0], model[2]):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _full(model) -> torch.Tensor:
    return torch.cat([p.full_tensor().reshape(-1) for p in model.parameters()])


def fsdp2(rank: int, world: int, port: int) -> None:
    _init(rank, world, port)
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
    _finish()


def dcp_round_trip(rank: int, world: int, port: int, folder: str, master_weights: bool = False) -> None:
    """get/set_state_dict through torch.distributed.checkpoint: a restored model and optimizer continue
    exactly as the originals do. With master_weights, a bf16 model whose fp32 master copies are DTensors
    (local shards stepped natively) and survive the checkpoint at full precision."""
    _init(rank, world, port)
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    mesh = init_device_mesh("cpu", (world,))
    dtype = torch.bfloat16 if master_weights else torch.float32
    options = dict(OPTIONS, master_weights=master_weights)
    original = _sharded_model(mesh, dtype)
    optimizer = FusedAdamW(original.parameters(), **options)
    _train(original, optimizer, rank)
    if master_weights:
        for p in original.parameters():
            master = optimizer.state[p]["master_param"]
            assert isinstance(master, DTensor) and master.dtype == torch.float32
            assert torch.equal(p.full_tensor(), master.full_tensor().to(torch.bfloat16))
    model_state, optimizer_state = get_state_dict(original, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=folder)

    restored = _sharded_model(mesh, dtype)
    restored_optimizer = FusedAdamW(restored.parameters(), **options)
    model_state, optimizer_state = get_state_dict(restored, restored_optimizer)
    loaded = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(loaded, checkpoint_id=folder)
    set_state_dict(restored, restored_optimizer, model_state_dict=loaded["model"],
                   optim_state_dict=loaded["optimizer"])

    _train(original, optimizer, rank, steps=2, first=STEPS)
    _train(restored, restored_optimizer, rank, steps=2, first=STEPS)
    assert torch.equal(_full(original), _full(restored))
    if master_weights:
        for p, q in zip(original.parameters(), restored.parameters()):
            assert torch.equal(optimizer.state[p]["master_param"].full_tensor(),
                               restored_optimizer.state[q]["master_param"].full_tensor())
    assert restored_optimizer.state[next(restored.parameters())]["step"].item() == STEPS + 2
    _finish()
