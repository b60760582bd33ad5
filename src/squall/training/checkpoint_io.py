"""Checkpoints written atomically: a crash mid-write never leaves a truncated .ckpt behind."""

from __future__ import annotations

import os
from typing import Any

from pytorch_lightning.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str, storage_options: Any | None = None
    ) -> None:
        temporary = f"{path}.tmp-{os.getpid()}"
        super().save_checkpoint(checkpoint, temporary, storage_options)
        os.replace(temporary, path)
