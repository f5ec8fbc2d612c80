"""Per-run TensorBoard event files: training loss, validation top-k, timings, baseline."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf


class RunWriter:
    """Writes scalars for one run into `<run_dir>/tensorboard/`.

    The baselines (popularity, item-kNN, EASE) are logged at every epoch under `baseline/` so
    they draw as flat reference lines beside the model's `val/` curves.
    """

    def __init__(self, run_dir: str | Path, ks: tuple[int, ...]) -> None:
        self.logdir = Path(run_dir) / "tensorboard"
        self.ks = ks
        self.writer = tf.summary.create_file_writer(str(self.logdir))

    def epoch(self, epoch: int, logs: dict[str, float],
              baselines: dict[str, dict[str, float]]) -> None:
        """`baselines`: name -> metrics (popularity, item-kNN, EASE; empty when skipped)."""
        with self.writer.as_default(step=epoch):
            tf.summary.scalar("train/loss", logs["loss"])
            tf.summary.scalar("time/epoch_seconds", logs["epoch_seconds"])
            for k in self.ks:
                tf.summary.scalar(f"val/top_{k}", logs[f"val_top_{k}"])
                for name, metrics in baselines.items():
                    if f"val_top_{k}" in metrics:
                        tf.summary.scalar(f"baseline/{name}_val_top_{k}", metrics[f"val_top_{k}"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
