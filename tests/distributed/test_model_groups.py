"""Model groups, the num_gpus_per_model check, and what each rank of a group reads."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from tiny_graph import tiny_graph

from squall.config.schema import HardwareConfig
from squall.data.datamodule import ForecastDataModule, grid_shard
from squall.data.store_write import write_dataset
from squall.distributed.grid_sharding import GridSharding
from squall.distributed.groups import ModelGroups, check_num_gpus_per_model, model_groups
from squall.models.encoder_processor_decoder import EncoderProcessorDecoder


def test_ranks_are_numbered_by_model_group_then_shard():
    groups = ModelGroups(rank=5, world_size=8, shards=4, group=None)
    assert (groups.replica, groups.shard, groups.replicas, groups.leader) == (1, 1, 2, 4)


def test_num_gpus_per_model_must_divide_the_world():
    with pytest.raises(ValueError, match="num_gpus_per_model=3 does not divide the 4"):
        check_num_gpus_per_model(3, 4)
    with pytest.raises(ValidationError, match="num_gpus_per_model=3 does not divide"):
        HardwareConfig(devices=2, num_nodes=2, num_gpus_per_model=3)
    assert HardwareConfig(devices=4, num_nodes=2, num_gpus_per_model=8).num_gpus_per_model == 8


def test_one_process_needs_no_process_group():
    groups = model_groups(1, 1, 0)
    assert groups.group is None and groups.replicas == 1
    with pytest.raises(RuntimeError, match="torch.distributed initialised"):
        model_groups(2, 2, 0)


def test_what_cannot_be_sharded_is_refused_clearly():
    network = EncoderProcessorDecoder(
        tiny_graph(), 3, 2, hidden_channels=8, processor="transformer", num_heads=4
    )
    with pytest.raises(ValueError, match="pick num_heads divisible by it"):
        GridSharding(network, ModelGroups(rank=0, world_size=3, shards=3, group=None))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Synthetic: the value at (date d, point p) is 100 d + p."""
    dates = np.datetime64("2020-01-01", "s") + np.arange(12) * np.timedelta64(6, "h")
    values = 100 * np.arange(12)[:, None] + np.arange(10)[None, :]
    return write_dataset(
        tmp_path_factory.mktemp("groups") / "points.zarr",
        data=values.astype(np.float32)[:, None, None, :],
        dates=dates,
        latitudes=np.zeros(10),
        longitudes=np.arange(10.0),
        variables=["x"],
        frequency="6h",
        field_shape=(10,),
    )


def _read(store, shard: int, shards: int, replica: int, replicas: int) -> np.ndarray:
    datamodule = ForecastDataModule(
        str(store),
        windows={"training": ("2020", "2020")},
        variables=["x"],
        input_steps=1,
        rollout=0,
        step=1,
        batch_size={"training": 2},
        num_workers={"training": 0},
        seed=3,
    )
    datamodule.read_grid_shard(grid_shard(10, shard, shards))
    datamodule.deal_by_replica(replica, replicas)
    batches = [batch["data"][:, 0, 0, :, 0] for batch in datamodule.train_dataloader()]
    return np.concatenate([b.numpy() for b in batches])


def test_a_model_group_reads_the_same_samples_each_its_own_points(store):
    first, second = _read(store, 0, 2, 0, 2), _read(store, 1, 2, 0, 2)
    assert (first % 100).tolist()[0] == [0, 1, 2, 3, 4]
    assert (second % 100).tolist()[0] == [5, 6, 7, 8, 9]
    np.testing.assert_array_equal(first // 100, second // 100)  # the same dates
    other_replica = _read(store, 0, 2, 1, 2)
    dates = set((first // 100)[:, 0].tolist())
    assert dates.isdisjoint((other_replica // 100)[:, 0].tolist())
    assert len(dates) + len(other_replica) == 12  # the replicas share the samples out
