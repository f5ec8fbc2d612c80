"""`python -m experiments.train` end to end: artefacts, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, write_lines

from experiments.train import main


def test_train_writes_config_metrics_and_events(tmp_path: Path, tiny_overrides: list[str],
                                                capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    code = main([*tiny_overrides, f"hydra.run.dir={run_dir}", "optimizer=adam",
                 "optimizer.learning_rate=0.01", "model.embedding_dim=16"])
    assert code == 0
    out = capsys.readouterr().out
    assert "top-100" in out and "val pop" in out and str(run_dir) in out
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["optimizer"] == {"name": "adam", "learning_rate": 0.01, "lazy": "auto"}
    assert config["model"]["embedding_dim"] == 16 and "hydra" not in config
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["metrics"]) >= {"val_top_100", "test_top_100"}
    assert metrics["popularity"]["val_top_100"] > 0
    assert list(run_dir.glob("events.out.tfevents.*"))  # TensorBoard's run: the folder


def bad_file(tmp_path: Path, lines: list[str]) -> str:
    return str(write_lines(tmp_path / "bad.csv", lines))


OK_ROWS = ["A1,0001,5.0,1", "A2,0002,4.0,2"]

BAD_INPUTS = {
    "missing file": (lambda t: ["data.path=" + str(t / "nope.csv")], "does not exist"),
    "wrong field count": (lambda t: ["data.path=" + bad_file(t, [*OK_ROWS, "A3,0003,5.0"])],
                          "line 3 has the wrong number of fields"),
    "non-numeric rating": (lambda t: ["data.path=" + bad_file(t, [*OK_ROWS, "A3,0003,x,3"])],
                           "line 3: rating column 'Rating' holds 'x'"),
    "filters drop everything": (lambda t: ["data.min_item_ratings=1000000"],
                                "data.min_item_ratings=1000000 drops every rating"),
    "sample fraction zero": (lambda t: ["data.sample_fraction=0"],
                             r"data.sample_fraction=0.0 is invalid: expected a number in \(0, 1\]"),
    "sample fraction above one": (lambda t: ["data.sample_fraction=1.5"], "data.sample_fraction=1.5"),
    "embedding dim": (lambda t: ["model.embedding_dim=0"], "model.embedding_dim=0 is invalid"),
    "batch size": (lambda t: ["train.batch_size=-8"], "train.batch_size=-8 is invalid"),
    "epochs": (lambda t: ["train.epochs=0"], "train.epochs=0 is invalid"),
    "unknown optimizer": (lambda t: ["optimizer=adamw"],
                          "Could not find 'optimizer/adamw'.*adagrad.*adam.*sgd"),
    "unknown data config": (lambda t: ["data=netflix"], "Could not find 'data/netflix'.*synthetic"),
    "unknown key": (lambda t: ["model.embeding_dim=8"], "embeding_dim"),
    "held-out fractions": (lambda t: ["data.val_fraction=0.5", "data.test_fraction=0.5"],
                           "leave no|so that training data remains"),
    "amazon without path": (lambda t: ["data=amazon_electronics"], "data.path"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
        case: str, tmp_path: Path, tiny_overrides: list[str],
        capsys: pytest.CaptureFixture) -> None:
    make_args, message = BAD_INPUTS[case]
    run_dir = tmp_path / "run"
    code = main([*tiny_overrides, f"hydra.run.dir={run_dir}", *make_args(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    import re
    assert re.search(message, lines[0]), lines[0]
    assert not run_dir.exists()


def test_subprocess_error_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train", "optimizer=adamw",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error: Could not find 'optimizer/adamw'" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_runs_started_in_the_same_second_get_their_own_directory(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from experiments.cli.rundir import claim_new_dir

    target = tmp_path / "runs" / "2026-01-01_00-00-00"
    with ThreadPoolExecutor(8) as pool:  # eight processes racing for one dated name
        claimed = list(pool.map(lambda _: claim_new_dir(target), range(8)))
    assert len(set(claimed)) == 8 and target in claimed
    assert all(p.is_dir() and p.parent == target.parent for p in claimed)


def test_a_full_disk_at_the_end_prints_the_numbers_and_one_error_line(
        tmp_path: Path, tiny_overrides: list[str], capsys, monkeypatch) -> None:
    """Writing vectors.npz fails (ENOSPC injected where the bytes would land): the table is
    printed, then one error line, exit 1; metrics.json is whole (written first, atomically)
    and no temporary file is left."""
    import errno

    import recsys.serving

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recsys.serving.np, "savez", full_disk)
    run_dir = tmp_path / "run"
    code = main([*tiny_overrides, f"hydra.run.dir={run_dir}"])
    captured = capsys.readouterr()
    assert code == 1 and "top-100" in captured.out
    err = captured.err.strip().splitlines()
    assert err == [f"error: cannot write into '{run_dir}' (No space left on device): the "
                   "numbers above were not all saved (metrics.json was saved); free some "
                   "space and run again"]
    json.loads((run_dir / "metrics.json").read_text())
    assert not (run_dir / "vectors.npz").exists() and not list(run_dir.glob(".*tmp*"))


def test_running_out_of_memory_for_the_vectors_is_not_called_a_full_disk(
        tmp_path: Path, tiny_overrides: list[str], capsys, monkeypatch) -> None:
    """TensorFlow's ResourceExhaustedError while the vectors are computed said `cannot write
    ... free some space`, with metrics.json saved: it names memory and what to change."""
    import tensorflow as tf

    import recsys.training

    def no_memory(*args: object, **kwargs: object) -> None:
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(recsys.training, "save_vectors", no_memory)
    run_dir = tmp_path / "run"
    assert main([*tiny_overrides, f"hydra.run.dir={run_dir}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: out of memory while computing vectors.npz (ResourceExhaustedError): "
                   "every user's and item's vector at model.embedding_dim=32 does not fit; "
                   "metrics.json was saved. Set train.save_vectors=false or use a smaller "
                   "model.embedding_dim"]
    json.loads((run_dir / "metrics.json").read_text())
