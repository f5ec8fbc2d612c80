"""What the commands print: nothing from TensorFlow's start-up, a line per epoch, progress
on long loads and epochs (tqdm, only on a terminal), notes on dropped rows, and `--help`'s
commented settings. `--verbose` brings TensorFlow's logs back."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from tqdm import tqdm

from recsys.cache import load_prepared
from recsys.config import DataConfig, RunConfig
from recsys.prepare import PreparedData

VERBOSE_ENV = "RECSYS_VERBOSE"


def printable(text: str) -> str:
    """`text` with control characters written as escapes (`\\x1b`, `\\n`): an id or a name
    from a data file or a command line must not move the cursor, recolour the terminal or
    split a table row."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode()
                   for c in text)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up lines (CUDA probing on a CPU machine, CPU
    feature notes, absl's pre-init warning: written by C++ straight to file descriptor 2,
    before any log level applies), and keep its Python logger to errors (no retracing
    warnings). What the import prints is shown if the import fails."""
    if "tensorflow" in sys.modules or verbose():
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def load_data(cfg: DataConfig) -> PreparedData:
    """Load (or read the cached) prepared data, with a live timer on a terminal; say on the
    console what was dropped or rebuilt, so that no row disappears silently."""
    start = time.perf_counter()
    with _ticker(f"loading {cfg.path or 'the synthetic data set'}"):
        prepared, info = load_prepared(cfg)
    seconds = time.perf_counter() - start
    notes = [str(info["notice"])] if info.get("notice") else []
    missing = int(prepared.stats.get("rows_missing_fields", 0) or 0)
    skipped = int(prepared.stats.get("bad_lines_skipped", 0) or 0)
    if missing:
        notes.append(f"{missing} row(s) with an empty user, item or rating field (or rating "
                     "NaN) were dropped")
    if skipped:
        notes.append(f"{skipped} malformed line(s) were skipped (data.on_bad_lines=skip)")
    if trimmed := int(prepared.stats.get("ids_trimmed", 0) or 0):
        notes.append(f"{trimmed} user or item id(s) had spaces around them and were trimmed "
                     "(' U1 ' is the user 'U1')")
    if tied := int(prepared.stats.get("temporal_tied_at_cuts", 0) or 0):
        notes.append(f"{tied} rating(s) share the timestamp where data.split=temporal cuts "
                     "test or validation off: which side each lands on is drawn in a seeded "
                     "random order (data.seed), not taken from the file's order")
    if prepared.stats.get("per_user_file_order"):
        notes.append(f"every rating has the same timestamp (or the file has none): each "
                     f"user's held-out pairs under data.split={cfg.split} are their last in the "
                     "file's order; set data.timestamp_column if the file has times")
    if seconds >= 5:
        notes.append(f"data prepared in {seconds:.0f} s ({info.get('cache', '')}); the next run "
                     "with these data settings reads the cache")
    for note in notes:
        print(f"note: {note}", flush=True)
    return prepared


def warn_about_data(prepared: PreparedData, config: RunConfig) -> None:
    """`warning:` lines where the data makes the reported top-k near meaningless."""
    from recsys.caveats import caveats

    for line in caveats(prepared, config.data.sample_fraction, max(config.train.top_ks)):
        print(f"warning: {line}", flush=True)


class _ticker:
    """An elapsed-time line on a terminal while a step without its own progress runs."""

    def __init__(self, what: str) -> None:
        self.bar = tqdm(desc=what, bar_format="{desc}: {elapsed}", disable=None, leave=False)
        self.done = threading.Event()

    def __enter__(self) -> _ticker:
        if not self.bar.disable:
            threading.Thread(target=self._tick, daemon=True).start()
        return self

    def _tick(self) -> None:
        while not self.done.wait(1.0):
            self.bar.refresh()

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.bar.close()


def epoch_lines(epochs: int, metric: str) -> Any:
    """A Keras callback printing one line per epoch, with a progress bar over the training
    steps of the epoch on a terminal."""
    import tensorflow as tf

    class EpochLines(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.bar = tqdm(total=self.params.get("steps"), desc=f"epoch {epoch + 1}/{epochs}",
                            unit="step", disable=None, leave=False)

        def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
            self.bar.update(1)

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.bar.close()
            logs = logs or {}
            print(f"epoch {epoch + 1:>3}/{epochs}  loss {logs.get('loss', float('nan')):.4f}  "
                  f"{metric} {logs.get(metric, float('nan')):.4f}  "
                  f"train {logs.get('epoch_seconds', 0):.1f} s  "
                  f"eval {logs.get('eval_seconds', 0):.1f} s", flush=True)

        def on_train_end(self, logs: dict[str, float] | None = None) -> None:
            print("evaluating the kept weights on the full validation and test sets", flush=True)

    return EpochLines()


def unused_settings(config_dir: Path, config_name: str, overrides: list[str]) -> str:
    """After `--cfg job`: a YAML comment per key the printed config holds but does not use."""
    from experiments.cli.compose import compose_config, job_config
    from recsys.config import DataConfig
    from recsys.typed import build

    try:
        data = build(DataConfig, job_config(compose_config(config_name, overrides,
                                                           config_dir))["data"], "data")
    except Exception:  # noqa: BLE001 - the config printed; a note about it is optional
        return ""
    return "".join(f"# unused: {key} ({why})\n" for key, why in data.unused().items())


def commented_settings(config_dir: Path, config_name: str, overrides: list[str]) -> str:
    """`--help`'s settings: each chosen option's YAML file as written, comments included."""
    from experiments.cli.compose import compose_config

    try:
        choices: DictConfig = compose_config(config_name, overrides, config_dir).hydra.runtime.choices
    except Exception:  # noqa: BLE001 - help must print even for a broken command line
        return ""
    parts = ["== Settings: each chosen option's file (change a value with GROUP.KEY=VALUE) =="]
    for group, option in reversed(list(choices.items())):  # in defaults-list order
        file = config_dir / str(group) / f"{option}.yaml"
        if str(group).startswith("hydra") or option is None or not file.is_file():
            continue
        text = file.read_text()
        where = f"# {group}={option}  ({file.relative_to(config_dir.parent)})"
        if "@package _global_" in text:  # e.g. an experiment: its keys are top-level ones
            parts.append(f"{where}\n{text.rstrip()}")
            continue
        body = "\n".join(f"  {line}" if line.strip() else line for line in text.splitlines())
        parts.append(f"{where}\n{group}:\n{body}")
    return "\n".join(parts)


def command(module: str) -> str:
    """How to run `module` with the interpreter running now (its venv need not be active):
    `.venv/bin/python -m experiments.train`, or the venv's own `tensorboard` script."""
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())  # short when the venv is in this folder
    if module == "tensorboard":
        return str(python.parent / "tensorboard")
    return f"{python} -m {module}"


def pipe_safe(main: Callable[..., int]) -> Callable[..., int]:
    """A command's main that ends quietly when its reader leaves (`... --help | head`): no
    BrokenPipeError traceback, exit 0."""
    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs)
        except BrokenPipeError:
            with contextlib.suppress(OSError):  # Python would report the flush at exit too
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0

    return wrapper
