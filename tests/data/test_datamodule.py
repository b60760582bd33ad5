"""The datamodule under a real Lightning Trainer: a run stopped mid-epoch and resumed from its
checkpoint sees every remaining sample of that epoch once, in the same order."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from squall.data.datamodule import ForecastDataModule
from squall.data.store_write import write_dataset


class _Killed(RuntimeError):
    """Stands for the job being killed (Lightning turns KeyboardInterrupt into an exit)."""


class _Recorder(pl.LightningModule):
    """Records the anchor of each sample it trains on (the store's values are date indices)."""

    def __init__(self, stop_after: int | None = None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[int] = []
        self.stop_after = stop_after

    def training_step(self, batch, batch_idx):
        if self.stop_after is not None and len(self.seen) >= self.stop_after:
            raise _Killed  # the job is killed here, after a checkpoint
        assert batch["data"].is_contiguous()  # the model sees the contract's memory layout
        self.seen += batch["data"][:, 1, 0, 0, 0].round().to(torch.int64).tolist()
        return (self.weight * batch["data"].mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    dates = np.datetime64("2020-01-01", "s") + np.arange(30) * np.timedelta64(6, "h")
    data = np.broadcast_to(np.arange(30, dtype=np.float32)[:, None, None, None], (30, 1, 1, 4))
    return write_dataset(
        tmp_path_factory.mktemp("dm") / "counting.zarr",  # synthetic: values are date indices
        data=data,
        dates=dates,
        latitudes=np.zeros(4),
        longitudes=np.arange(4.0),
        variables=["x"],
        frequency="6h",
        field_shape=(4,),
    )


def _fit(store, root, model, resume=None, epochs=1):
    datamodule = ForecastDataModule(
        str(store),
        windows={"training": ("2020", "2020")},
        variables=["x"],
        input_steps=2,
        rollout=1,
        step=1,
        batch_size={"training": 4},
        num_workers={"training": 1},
        seed=11,
    )
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=[ModelCheckpoint(dirpath=root, every_n_train_steps=2, save_top_k=-1)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        num_sanity_val_steps=0,
    )
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume)
    except _Killed:
        pass
    return datamodule


def test_resume_mid_epoch_continues_at_the_next_unseen_sample(store, tmp_path):
    full = _Recorder()
    _fit(store, tmp_path / "full", full, epochs=2)
    assert len(full.seen) == 56 and sorted(full.seen[:28]) == list(range(1, 29))

    stopped = _Recorder(stop_after=12)  # three batches, checkpoint after the second
    _fit(store, tmp_path / "stopped", stopped, epochs=2)
    checkpoint = tmp_path / "stopped" / "epoch=0-step=2.ckpt"
    assert checkpoint.exists() and stopped.seen == full.seen[:12]

    resumed = _Recorder()
    _fit(store, tmp_path / "stopped", resumed, resume=str(checkpoint), epochs=2)
    assert resumed.seen == full.seen[8:]  # the rest of epoch 0, then all of epoch 1
