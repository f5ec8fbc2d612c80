"""Bad input through the real entry points: one `error:` line, exit 2, nothing changed.

Rows of the README's troubleshooting table not covered in test_train_cli.py, test_loading.py,
test_search_space.py or test_sweep.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import REPO, TINY_SYNTHETIC, TINY_TRAIN, write_lines

from experiments import sweep, train


def run_sweep(tmp_path: Path, capsys, *extra: str) -> tuple[int, list[str]]:
    code = sweep.main([f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
                       f"search.dir={tmp_path / 'study'}", *extra])
    return code, capsys.readouterr().err.strip().splitlines()


def run_train(tmp_path: Path, capsys, *extra: str) -> tuple[int, list[str]]:
    code = train.main([f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
                       f"hydra.run.dir={tmp_path / 'run'}", *extra])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("lines", "message"), [
    ([], "holds no ratings"),
    (["userId,productId,Rating,timestamp"], "holds no ratings"),
    (["A1,0001,5.0,1", "A2,0002,4.0,yesterday"], "line 2: timestamp column 'timestamp' holds "
                                                 "'yesterday'; expected an integer"),
])
def test_empty_header_only_and_bad_timestamp(tmp_path: Path, capsys, lines, message) -> None:
    path = write_lines(tmp_path / "r.csv", lines) if lines else tmp_path / "r.csv"
    path.touch()
    header = ["data.header=true"] if lines[:1] == ["userId,productId,Rating,timestamp"] else []
    code, err = run_train(tmp_path, capsys, f"data.path={path}", *header)
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "run").exists()


def test_data_path_is_a_directory(tmp_path: Path, capsys) -> None:
    code, err = run_train(tmp_path, capsys, f"data.path={tmp_path}")
    assert code == 2 and f"data.path='{tmp_path}' is a directory" in err[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_data_file(tmp_path: Path, capsys) -> None:
    path = write_lines(tmp_path / "r.csv", ["A1,0001,5.0,1"])
    path.chmod(0)
    code, err = run_train(tmp_path, capsys, f"data.path={path}")
    assert code == 2 and "cannot be read" in err[0]


def test_bad_lines_can_be_skipped_and_are_counted(tmp_path: Path, capsys) -> None:
    rows = [f"A{i % 40},{i % 30:04d},5.0,{i}" for i in range(600)]
    path = write_lines(tmp_path / "r.csv", [*rows[:10], "A9,0001,5.0", *rows[10:]])
    assert run_train(tmp_path, capsys, f"data.path={path}")[0] == 2
    code = train.main([f"data.path={path}", "data.on_bad_lines=skip", *TINY_TRAIN,
                       f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'ok'}"])
    assert code == 0
    import json

    stats = json.loads((tmp_path / "ok" / "metrics.json").read_text())["data_stats"]
    assert stats["bad_lines_skipped"] == 1 and stats["rows_in"] == 600


def test_log_interval_with_non_positive_bound(tmp_path: Path, capsys) -> None:
    code, err = run_sweep(tmp_path, capsys,
                          "++search.params={optimizer.learning_rate: 'tag(log, interval(0.0, 1.0))'}")
    assert code == 2 and "log-scale bound must be > 0" in err[0]
    assert not (tmp_path / "study").exists()


def test_database_refusing_connection_is_reported_with_password_masked(tmp_path: Path,
                                                                       capsys) -> None:
    url = "postgresql+psycopg://alice:s3cret-pw@127.0.0.1:1/optuna"
    code, err = run_sweep(tmp_path, capsys, f"search.storage={url}")
    assert code == 2 and len(err) == 1
    assert "cannot open the study storage" in err[0] and "alice:***@127.0.0.1:1" in err[0]
    assert "s3cret-pw" not in err[0]


def test_existing_study_with_other_metric_is_refused_untouched(tmp_path: Path, capsys) -> None:
    (tmp_path / "study").mkdir()
    storage = f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    optuna.create_study(study_name="default", storage=storage,
                        direction="maximize").set_user_attr("metric", "val_top_10")
    before = (tmp_path / "study" / "study.db").read_bytes()
    code, err = run_sweep(tmp_path, capsys)
    assert code == 2 and "metric=val_top_10, not direction=maximize metric=val_top_100" in err[0]
    assert (tmp_path / "study" / "study.db").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == ["study.db"]


def test_output_dir_not_writable(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, err = run_sweep(tmp_path, capsys, f"search.dir={blocker / 'study'}",
                          f"search.storage=sqlite:///{tmp_path / 'elsewhere' / 'study.db'}")
    assert code == 2 and f"search.dir='{blocker / 'study'}' is not a writable folder" in err[0]
    code, err = run_train(tmp_path, capsys, f"hydra.run.dir={blocker / 'run'}")
    assert code == 2 and "cannot write run directory" in err[0]
    code, err = run_train(tmp_path, capsys, f"data.cache_dir={blocker / 'cache'}")
    assert code == 2 and "data.cache_dir=" in err[0] and "writable" in err[0]


def test_verbose_flag_shows_the_traceback(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "experiments.train", "model.embedding_dim=0",
               f"hydra.run.dir={tmp_path / 'run'}"]
    quiet = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    loud = subprocess.run([*command, "--verbose"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert "error: model.embedding_dim=0 is invalid" in quiet.stderr
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "UserError" in loud.stderr


@pytest.mark.parametrize(("override", "message"), [
    ("model.logq_correction=abc", "model.logq_correction='abc' is invalid: expected true or false"),
    ("train.jit_compile=maybe", "train.jit_compile='maybe' is invalid: expected true or false"),
    ("data.sample_fraction=true", "data.sample_fraction=true is invalid: expected a finite number"),
    ("+foo=1", "foo is not a known setting"),
    ("optimizer.learning_rate=inf", "optimizer.learning_rate=inf is invalid: expected a finite"),
    ("model.temperature=abc", "model.temperature='abc' is invalid: expected a finite number"),
    ("train.threads=abc", "train.threads='abc' is invalid: expected an integer"),
    ("train.top_ks=abc", "train.top_ks='abc' is invalid: expected a list of integers"),
    ("data.seed=abc", "data.seed='abc' is invalid: expected an integer"),
    ("train.seed=-1", "train.seed=-1 is invalid: expected an integer >= 0"),
    ("model.embedding_dim=true", "model.embedding_dim=true is invalid: expected an integer"),
    ("model.embedding_dimm=3", "model.embedding_dimm is not a known setting: did you mean "
                               "model.embedding_dim?"),
])
def test_config_values_are_checked_against_their_types(tmp_path: Path, capsys, override: str,
                                                       message: str) -> None:
    code, err = run_train(tmp_path, capsys, override)
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("override", "message"), [
    ("search.n_trials=true", "search.n_trials=true is invalid: expected an integer"),
    ("search.heartbeat_interval=0", "search.heartbeat_interval=0 is invalid: expected an "
                                    "integer >= 1"),
    ("search.grace_period=abc", "search.grace_period='abc' is invalid: expected an integer"),
    ("search.timeout=abc", "search.timeout='abc' is invalid: expected a finite number"),
    ("search.sampler.name=grid", "search.sampler.name='grid' is invalid: expected tpe or random"),
    ("search.pruner.name=asha", "search.pruner.name='asha' is invalid: expected median or "
                                "hyperband or none"),
    ("search.direction=up", "search.direction='up' is invalid: expected maximize or minimize"),
    ("+search.params={optimizer.learning_rate: 'interval(0.01, inf)'}",
     "optimizer.learning_rate=inf is invalid: expected a finite number"),
    ("search.params={optimizer.learning_rate: 0.1}", "search.params has no key "
                                                     "optimizer.learning_rate: add keys with"),
    ("search.storage=postgresql+psycopg://u:pw@localhost:notaport/db", "search.storage="),
])
def test_search_settings_are_checked_and_nothing_is_created(tmp_path: Path, capsys,
                                                            override: str, message: str) -> None:
    code, err = run_sweep(tmp_path, capsys, override)
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert "pw" not in err[0].replace("psycopg", "")
    assert not (tmp_path / "study").exists()  # no study folder, no empty study.db


def test_report_of_a_study_that_does_not_exist_lists_the_studies_and_creates_nothing(
        tmp_path: Path, capsys) -> None:
    from experiments import report

    (tmp_path / "sweeps" / "mine").mkdir(parents=True)
    (tmp_path / "sweeps" / "mine" / "study.db").touch()
    code = report.main(["study=nosuch", f"search.dir={tmp_path / 'sweeps' / 'nosuch'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "no study named 'nosuch'" in err[0] and "mine" in err[0], err
    assert not (tmp_path / "sweeps" / "nosuch").exists()
