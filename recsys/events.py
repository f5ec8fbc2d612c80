"""Per-run TensorBoard event files: training loss, validation top-k, NDCG@k and MRR per epoch,
timings, the selected epoch's validation and test metrics, and the baselines as runs of their
own."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from recsys.metrics import Metric, every_metric, top

BASELINES_DIR = "baselines"
# Per-epoch validation curves (and the baselines' flat lines on the same charts). TensorBoard's
# Time Series orders groups, and cards within a group, by name: the metric the run selects on
# (the study's metric) is the group `epoch` alone, listed first, and every other validation
# curve is the group `epoch_other` after it, then `selected`, `time` and `train`. One group
# of nine cards put val_top_100 last, below val_mrr and val_ndcg_*.
CURVES = "epoch"
OTHER_CURVES = "epoch_other"


def curve_tag(metric: Metric, selected: str) -> str:
    """val_top_100 -> `epoch/val_top_100` when the run selects on `val_top_100`, else
    `epoch_other/val_top_100`: a validation metric's per-epoch tag."""
    return f"{CURVES if metric.name == selected else OTHER_CURVES}/{metric.name}"


class RunWriter:
    """Writes scalars for one run into `<run_dir>/` (event files beside config.yaml).

    With `baseline_curves`, each baseline (popularity, item-kNN, EASE) is a run of its own,
    `<run_dir>/baselines/<name>/`, with the model's curve tags at every epoch: on the same
    charts it draws as a flat line beside the model. `selected`: the validation metric the
    run selects its epoch on (its chart comes first).
    """

    def __init__(self, run_dir: str | Path, ks: tuple[int, ...], selected: str,
                 baseline_curves: bool = True) -> None:
        # The run folder itself: TensorBoard names the run after it (`15` for a study's
        # trial, `runs/<date>` under outputs/), not `.../tensorboard`.
        self.logdir = Path(run_dir)
        self.ks = ks
        self.selected = selected
        self.writer = tf.summary.create_file_writer(str(self.logdir))
        self.baseline_curves = baseline_curves
        self.baseline_writers: dict[str, tf.summary.SummaryWriter] = {}

    def epoch(self, epoch: int, logs: dict[str, float],
              baselines: dict[str, dict[str, float]]) -> None:
        """`baselines`: name -> metrics (popularity, item-kNN, EASE; empty when skipped)."""
        with self.writer.as_default(step=epoch):
            tf.summary.scalar("train/loss", logs["loss"])
            tf.summary.scalar("time/epoch_seconds", logs["epoch_seconds"])
            if "learning_rate" in logs:
                tf.summary.scalar("train/learning_rate", logs["learning_rate"])
            for metric in every_metric(self.ks):
                if metric.name in logs:
                    tf.summary.scalar(curve_tag(metric, self.selected), logs[metric.name])
        self.writer.flush()
        if self.baseline_curves:
            write_baselines(self.logdir / BASELINES_DIR, baselines, self.ks, self.selected,
                            [epoch], self.baseline_writers)

    def final(self, epoch: int, metrics: dict[str, float]) -> None:
        """The reported numbers (the kept epoch's weights) under `selected/`."""
        with self.writer.as_default(step=epoch):
            for key, value in metrics.items():
                tf.summary.scalar(f"selected/{key}", value)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        for writer in self.baseline_writers.values():
            writer.close()


def write_baselines(folder: Path, baselines: dict[str, dict[str, float]], ks: tuple[int, ...],
                    selected: str, steps: list[int],
                    writers: dict[str, tf.summary.SummaryWriter] | None = None) -> None:
    """Each baseline's validation metrics under the model's curve tags (`selected`: the
    metric of the first chart) at `steps`, in `<folder>/<name>/`."""
    own = writers is None
    writers = {} if writers is None else writers
    for name, metrics in baselines.items():
        if not any(top(k).name in metrics for k in ks):
            continue
        if name not in writers:
            writers[name] = tf.summary.create_file_writer(str(folder / name))
        for step in steps:
            with writers[name].as_default(step=step):
                for metric in every_metric(ks):
                    if metric.name in metrics:
                        tf.summary.scalar(curve_tag(metric, selected), metrics[metric.name])
        writers[name].flush()
    if own:
        for writer in writers.values():
            writer.close()
