"""FusedAdamW where training is distributed, on the CPU with the gloo backend (2 processes, loopback):
DDP keeps the ranks bit-identical; ZeroRedundancyOptimizer(optimizer_class=FusedAdamW) works; under FSDP2
(fully_shard, DTensor parameters) the native backend steps each rank's local shard, an empty shard
included, and matches torch.optim.AdamW; torch.distributed.checkpoint round-trips model and optimizer, fp32
master weights of a bf16 model and 8-bit moments included; 8-bit moments step each local shard as it would alone."""
import socket

import pytest
import torch

import distributed_workers as workers

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="this torch has no distributed gloo backend")
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(worker, *args):
    torch.multiprocessing.spawn(worker, args=(WORLD, _free_port(), *args), nprocs=WORLD, join=True)


def test_ddp_keeps_ranks_identical_and_matches_torch():
    _spawn(workers.ddp)


def test_zero_redundancy_optimizer_with_fusedadamw():
    _spawn(workers.zero)


def test_fsdp2_steps_local_shards_natively_and_matches_torch():
    _spawn(workers.fsdp2)


def test_distributed_checkpoint_round_trip_under_fsdp2(tmp_path):
    _spawn(workers.dcp_round_trip, str(tmp_path / "checkpoint"))


def test_fsdp2_master_weights_are_sharded_and_checkpointed_at_full_precision(tmp_path):
    _spawn(workers.dcp_round_trip, str(tmp_path / "checkpoint"), "master_weights")


def test_fsdp2_eight_bit_moments_step_each_local_shard_as_alone_and_convert_both_ways():
    _spawn(workers.fsdp2_eight_bit)


def test_hsdp_eight_bit_moments_step_each_local_shard_as_alone():
    _spawn(workers.fsdp2_eight_bit, True)


def test_distributed_checkpoint_round_trip_of_eight_bit_moments_under_fsdp2(tmp_path):
    _spawn(workers.dcp_round_trip, str(tmp_path / "checkpoint"), "8bit")
