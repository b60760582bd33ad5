"""MLflow beyond Lightning's logger: system metrics during training, and syncing runs made
offline (a local sqlite store, e.g. on compute nodes without network) to another store."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytorch_lightning.callbacks import Callback


@contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise opening a local sqlite store: ranks started together (srun, torchrun) would
    otherwise race to create its tables ("duplicate column name"). Other stores: no lock."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class SystemMetrics(Callback):
    """CPU, memory, disk, network and GPU use, sampled every `interval` s into the run."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.monitor = None

    def on_fit_start(self, trainer, pl_module) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        logger = next((lg for lg in trainer.loggers if hasattr(lg, "run_id")), None)
        if logger is None or trainer.global_rank != 0:
            return
        self.monitor = SystemMetricsMonitor(
            logger.run_id,
            sampling_interval=self.interval,
            tracking_uri=logger._tracking_uri,
            resume_logging=True,
        )
        self.monitor.start()

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.monitor is not None:
            self.monitor.finish()
            self.monitor = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_fit_end(trainer, pl_module)  # stop the sampling thread however training ends


def sync_runs(source_uri: str, target_uri: str, experiment: str | None = None) -> list[str]:
    """Copy every run (params, metrics with their steps, tags, artifacts) of `source_uri` that
    `target_uri` does not have yet; returns the new run ids. A run is recognised on the target
    by its tag `squall.source_run`, so syncing twice copies nothing twice."""
    import tempfile

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    source, target = MlflowClient(source_uri), MlflowClient(target_uri)
    copied = []
    for exp in source.search_experiments():
        if experiment and exp.name != experiment:
            continue
        target_exp = target.get_experiment_by_name(exp.name)
        target_id = target_exp.experiment_id if target_exp else target.create_experiment(exp.name)
        known = {
            r.data.tags.get("squall.source_run")
            for r in target.search_runs([target_id], max_results=50000)
        }
        for run in source.search_runs([exp.experiment_id], max_results=50000):
            if run.info.run_id in known:
                continue
            new = target.create_run(
                target_id, run_name=run.info.run_name, start_time=run.info.start_time
            )
            history = [
                Metric(key, m.value, m.timestamp, m.step)
                for key in run.data.metrics
                for m in source.get_metric_history(run.info.run_id, key)
            ]
            tags = [RunTag(k, v) for k, v in run.data.tags.items() if not k.startswith("mlflow.")]
            tags.append(RunTag("squall.source_run", run.info.run_id))
            params = [Param(k, v) for k, v in run.data.params.items()]
            for first in range(0, max(len(history), 1), 1000):  # the API takes batches
                target.log_batch(
                    new.info.run_id,
                    metrics=history[first : first + 1000],
                    params=params if first == 0 else [],
                    tags=tags if first == 0 else [],
                )
            with tempfile.TemporaryDirectory() as folder:
                local = source.download_artifacts(run.info.run_id, "", folder)
                if any(Path(local).iterdir()):
                    target.log_artifacts(new.info.run_id, local)
            target.set_terminated(new.info.run_id, run.info.status, run.info.end_time)
            copied.append(new.info.run_id)
    return copied
