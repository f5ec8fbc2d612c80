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

from experiments import report, sweep, train


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
                       "train.top_ks=[1,10]",  # a 30-item catalog: top-100 would be constant
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
    ("train.seed=-1", "train.seed=-1 is invalid: expected an integer in [0, 4294967295]"),
    ("train.seed=4294967296", "train.seed=4294967296 is invalid: expected an integer in [0, "),
    ("data.item_column=userId", "data.user_column='userId' is invalid: expected a column of its "
                                "own (data.item_column names it too)"),
    ("eval.knn_neighbors=[]", "eval.knn_neighbors=[] is invalid: expected at least one value "
                              "while eval.baselines holds itemknn"),
    ("train.top_ks=[1000000000000]", "train.top_ks=[1000000000000] holds k=1000000000000, not "
                                     "below the catalog's"),
    ("model.negatives=softmax", "model.negatives='softmax' is invalid: expected in_batch or "
                                "mixed or catalog"),
    ("model.user_tower=graph", "model.user_tower='graph' is invalid: expected id or history or "
                               "id+history"),
    ("model.history_dropout=1", "model.history_dropout=1.0 is invalid: expected a number in [0, 1)"),
    ("train.monitor=val_top_7", "train.monitor='val_top_7' is invalid: expected null or one of "
                                "val_top_1, "),
    ("model.embedding_dim=true", "model.embedding_dim=true is invalid: expected an integer"),
    ("model.embedding_dimm=3", "model.embedding_dimm is not a known setting: did you mean "
                               "model.embedding_dim?"),
    # Sizes no machine here holds: refused before TensorFlow allocates (or the kernel kills).
    ("model.embedding_dim=1000000000", "model.embedding_dim=1000000000 with model.tower_layers=[] "
                                       "and batches of 1,024 rows (train.batch_size=1,024) on "
                                       "1,500 users and 300 items needs at least "),
    ("model.tower_layers=[100000000]", "), more than this machine's "),
    # Hydra's grammar: say which character stopped it and how to quote, not a lexer state.
    ("data.path=~/x.csv", "cannot read the override 'data.path=~/x.csv': Hydra's override "
                          "grammar stops at '~'; quote the value, e.g. 'data.path=\"~/x.csv\"'"),
    ("data.separator=;;", "stops at ';'; quote the value, e.g. 'data.separator=\";;\"'"),
    ("data.path=a<b.csv", "stops at '<'"),
    ("train.monitor=val_top_1)", "stops at ')'"),
    ("model.negatives=mixed", "model.sampled_negatives=1024 is more than the catalog's 300 "
                              "items: use at most 300"),
    # The embedded generator: limits named instead of a broadcast error or 67 GiB.
    ("data.synthetic.user_activity_exponent=1.0", "data.synthetic.user_activity_exponent=1.0 "
                                                  "is invalid: expected a number > 1"),
    ("data.synthetic.n_items=1000000000", "data.synthetic.n_items=1000000000 is invalid: "
                                          "expected at most 1,000,000"),
    ("data.synthetic.n_users=10", "data.synthetic.n_interactions=15000 is invalid: expected at "
                                  "most n_users x n_items = 3,000"),
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
                                "best_curve or hyperband or none"),
    # a study always maximizes (every metric is better higher): there is no such key
    ("search.direction=minimize", "search.direction is not a known setting: valid keys under "
                                  "search are allow_changed_base"),
    ("search.fidelity.max_rungs=0", "search.fidelity.max_rungs=0 is invalid: expected an "
                                    "integer >= 1 (1: off)"),
    ("search.fidelity.reduction_factor=1", "search.fidelity.reduction_factor=1 is invalid"),
    ("search.fidelity.rungs=3", "search.fidelity.rungs is not a known setting"),
    ("+search.params={optimizer.learning_rate: 'interval(0.01, inf)'}",
     "optimizer.learning_rate=inf is invalid: expected a finite number"),
    ("search.params={optimizer.learning_rate: 0.1}", "search.params has no key "
                                                     "optimizer.learning_rate: add keys with"),
    ("search.storage=postgresql+psycopg://u:pw@localhost:notaport/db", "search.storage="),
    ("search.storage=sqlite:///:memory:", "search.storage='sqlite:///:memory:' is invalid: "
                                          "expected a storage every worker"),
    ("+search.params={model.tower_layers: 'choice([16],[32,16])'}",
     "choices that are lists or mappings are not supported"),
    ("search.sampler.seed=-1", "search.sampler.seed=-1 is invalid: expected null or an integer "
                               "in [0, 4294967295]"),
    ("search.study_name=''", "search.study_name='' is invalid: expected a non-empty name"),
    ("search.study_name=../../x", "search.study_name='../../x' is invalid: expected a non-empty "
                                  "name of at most 200 bytes, without /"),
    ("search.metric=val_ndcg_7", "search.metric='val_ndcg_7' is not a validation metric: "
                                 "available are val_top_1, "),
    ("+search.params={model.embedding_dim: choice(8|16)}", "a search expression inside a "
     "mapping must be quoted, e.g. '+search.params={model.embedding_dim: \"choice(8, 16)\"}' "
     "(Hydra read it as a ChoiceSweep)"),
    ("+search.params={model.embedding_dim: choice(8<16)}", "Hydra's override grammar stops at "
                                                           "'<'; quote the value"),
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


RATINGS = [f"U{i % 50},P{i % 30},{1 + i % 5}.0,{1000 + i}" for i in range(400)]


def amazon(path: Path) -> list[str]:
    return ["data=amazon_electronics", f"data.path={path}", "data.min_item_ratings=1",
            "train.epochs=1", "train.top_ks=[1,10]"]  # 30 items: top-100 would be constant


@pytest.mark.parametrize(("suffix", "codec"), [(".gz", "gzip"), (".bz2", "bzip2")])
@pytest.mark.parametrize("kind", ["truncated", "not compressed"])
def test_a_broken_compressed_file_is_named_with_its_codec(tmp_path: Path, capsys, kind: str,
                                                          suffix: str, codec: str) -> None:
    import bz2
    import gzip

    text = "\n".join(RATINGS).encode()
    path = tmp_path / f"ratings.csv{suffix}"
    packed = (gzip if codec == "gzip" else bz2).compress(text)
    path.write_bytes(packed[:len(packed) // 2] if kind == "truncated" else text)
    code, err = run_train(tmp_path, capsys, *amazon(path))
    assert code == 2 and len(err) == 1, err
    assert f"data.path='{path}' cannot be read" in err[0]
    assert f"(a truncated or not really {codec}-compressed file?)" in err[0]


def test_a_file_of_repeats_says_so_when_too_little_is_left(tmp_path: Path, capsys) -> None:
    path = write_lines(tmp_path / "r.csv", ["U1,P1,5.0,100"] * 400)
    code, err = run_train(tmp_path, capsys, *amazon(path))
    assert code == 2 and len(err) == 1, err
    assert "399 of 400 rows were repeats of a (user, item) pair, only the latest kept" in err[0]


def test_binary_garbage_gets_the_error_alone(tmp_path: Path, capsys) -> None:
    path = tmp_path / "ratings.csv"
    path.write_bytes(bytes(range(256)) * 20)
    code, err = run_train(tmp_path, capsys, *amazon(path))
    assert code == 2 and err == [f"error: data.path='{path}' is not a UTF-8 text ratings file "
                                 "(undecodable bytes)"]


def test_na_like_ids_are_ids_and_dropped_rows_are_announced(tmp_path: Path, capsys) -> None:
    extra = ["NA,P1,5.0,1", "null,P2,4.0,2", "U1,nan,3.0,3", "U2,N/A,3.0,3", "U3,#N/A,1.0,4",
             "U4,P4,NaN,5", "U5,,3.0,6"]
    path = write_lines(tmp_path / "r.csv", RATINGS + extra)
    code = train.main([f"data.cache_dir={tmp_path / 'cache'}", *TINY_TRAIN,
                       f"hydra.run.dir={tmp_path / 'run'}", *amazon(path)])
    out = capsys.readouterr().out
    assert code == 0
    # 2 rows dropped (an empty item, a NaN rating): said on the console, not only in a file
    assert "note: 2 row(s) with an empty user, item or rating field" in out
    import json

    stats = json.loads((tmp_path / "run" / "metrics.json").read_text())["data_stats"]
    assert stats["rows_missing_fields"] == 2
    assert stats["train_users"] + stats["validation_unknown_users"] >= 51  # NA and null kept


def test_a_timestamp_beyond_int64_is_an_error_with_its_line(tmp_path: Path, capsys) -> None:
    path = write_lines(tmp_path / "r.csv", RATINGS + ["U1,P1,5.0,99999999999999999999999"])
    code, err = run_train(tmp_path, capsys, *amazon(path))
    assert code == 2 and len(err) == 1
    assert "line 401: timestamp column 'timestamp' holds '99999999999999999999999'" in err[0]


def test_a_corrupt_cache_entry_is_discarded_and_rebuilt(tmp_path: Path, capsys) -> None:
    path = write_lines(tmp_path / "r.csv", RATINGS)
    assert run_train(tmp_path, capsys, *amazon(path))[0] == 0
    [entry] = (tmp_path / "cache" / "prepared").iterdir()
    blob = (entry / "interactions.npz").read_bytes()
    (entry / "interactions.npz").write_bytes(blob[:100])  # a full disk or a killed copy
    code = train.main([f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
                       f"hydra.run.dir={tmp_path / 'run2'}", *amazon(path)])
    out = capsys.readouterr().out
    assert code == 0 and "was unreadable (BadZipFile); it was discarded and is rebuilt" in out
    assert (entry / "interactions.npz").read_bytes() == blob


def test_a_diverging_run_fails_with_its_reason(tmp_path: Path, capsys) -> None:
    # Finite but huge: Adagrad at 1e6 gives a loss ~1e16, which looked like a normal run.
    code, err = run_train(tmp_path, capsys, "optimizer=adagrad", "optimizer.learning_rate=1e6")
    assert code == 1 and len(err) == 1
    assert "training loss became" in err[0] and "more than 100x the untrained model's" in err[0]


def test_a_group_choice_on_top_of_a_saved_config(tmp_path: Path, capsys) -> None:
    assert run_train(tmp_path, capsys)[0] == 0
    saved = tmp_path / "run" / "config.yaml"
    code = train.main(["--config", str(saved), "optimizer=adagrad",
                       "optimizer.learning_rate=0.2", f"hydra.run.dir={tmp_path / 'again'}"])
    assert code == 0, capsys.readouterr().err
    import yaml

    config = yaml.safe_load((tmp_path / "again" / "config.yaml").read_text())
    assert config["optimizer"] == {"name": "adagrad", "learning_rate": 0.2,
                                   "initial_accumulator_value": 0.1}
    assert config["data"]["synthetic"]["n_users"] == 1500  # the rest is the saved config's


def test_bad_yaml_in_a_saved_config(tmp_path: Path, capsys) -> None:
    saved = tmp_path / "config.yaml"
    saved.write_text("data: [1,\n")
    code = train.main(["--config", str(saved)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not valid YAML" in err[0]


@pytest.mark.parametrize("password", ["se,cret", "se'cret"])
def test_a_storage_url_that_does_not_parse_never_shows_its_password(tmp_path: Path, capsys,
                                                                     password: str) -> None:
    code, err = run_sweep(tmp_path, capsys,
                          f"search.storage=postgresql+psycopg://u:{password}@localhost/db")
    assert code == 2 and len(err) == 1 and "quote it" in err[0] and "oc.env" in err[0]
    assert "cret" not in err[0]


def test_a_truncated_model_is_named(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"\x08\x01\x12")  # cut short
    proc = subprocess.run([sys.executable, "-m", "experiments.recommend", str(model), "U1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert f"'{model}' is not a readable exported model" in errors[0]
    assert "Traceback" not in proc.stderr


def test_report_into_a_folder_it_cannot_write(tmp_path: Path, capsys) -> None:
    from experiments import report

    study_dir = tmp_path / "sweeps" / "s"
    study_dir.mkdir(parents=True)
    optuna.create_study(study_name="s", storage=f"sqlite:///{study_dir / 'study.db'}")
    (study_dir / "report").write_text("a file where the report folder goes")
    code = report.main(["study=s", f"search.dir={study_dir}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not a writable folder" in err[0], err


def test_a_failed_trial_records_why_even_when_its_folder_cannot_be_written(
        tmp_path: Path) -> None:
    from experiments.cli.compose import compose_run
    from experiments.sweeping.objective import Objective
    from experiments.sweeping.plan import group_options
    from experiments.sweeping.space import parse_space

    overrides = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN]
    space = parse_space({"model.embedding_dim": "choice(8, 16)"}, {},
                        compose_run(overrides)[0], group_options())
    (tmp_path / "study" / "trials").mkdir(parents=True)
    (tmp_path / "study" / "trials" / "3").write_text("not a folder")
    trial = optuna.trial.FixedTrial({"model.embedding_dim": 8}, number=3)
    with pytest.raises(Exception):  # noqa: B017 - the study records any failure
        Objective(space, overrides, tmp_path / "study", "val_top_100")(trial)
    assert "cannot write run directory" in trial.user_attrs["reason"]


def test_leftovers_of_a_killed_run_are_removed_on_the_next_start(tmp_path: Path) -> None:
    from experiments.sweeping.outputs import remove_leftovers

    study = tmp_path / "study"
    (study / ".best.x1y2").mkdir(parents=True)
    (study / "trials" / "3").mkdir(parents=True)
    stale = [study / ".best.x1y2", study / "trials" / "3" / ".config.yaml.tmp4242",
             study / "trials" / "3" / ".vectors.npz.tmp.npz"]
    for path in stale[1:]:
        path.write_text("half")
    fresh = study / "trials" / "3" / ".metrics.json.tmp99"  # a live writer's: kept
    fresh.write_text("")
    for path in stale:
        os.utime(path, (1, 1))
    assert remove_leftovers(study) == 3
    assert not any(p.exists() for p in stale) and fresh.exists()
    assert (study / "trials" / "3").is_dir()


def test_pipes_and_symlink_loops_are_refused_in_one_line(tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "ratings.fifo"
    os.mkfifo(fifo)  # reading it would block forever
    code, err = run_train(tmp_path, capsys, f"data.path={fifo}", "data=amazon_electronics")
    assert code == 2 and err == [f"error: data.path='{fifo}' is not a regular file (a pipe, "
                                 "socket or device): point it at a ratings file"]
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    code, err = run_train(tmp_path, capsys, f"data.path={loop}", "data=amazon_electronics")
    assert code == 2 and len(err) == 1 and "is a symbolic link that does not resolve" in err[0]
    assert not (tmp_path / "run").exists()


def test_flags_after_overrides_and_internal_arguments_stay_hidden() -> None:
    out = subprocess.run([sys.executable, "-m", "experiments.train", "model.embedding_dim=64",
                          "--cfg", "job"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "embedding_dim: 64" in out.stdout and "job_logging" not in out.stderr


def test_a_file_rewritten_with_the_same_size_and_mtime_is_not_read_from_the_cache(
        tmp_path: Path) -> None:
    """The cache key and the study fingerprint hash the file's content: a file rewritten in
    place (same size) with its old mtime restored is a new data set."""
    from experiments.sweeping.search_config import SearchConfig
    from experiments.sweeping.study import base_fingerprint
    from recsys.cache import cache_key
    from recsys.config import DataConfig

    path = write_lines(tmp_path / "r.csv", RATINGS)
    cfg = DataConfig(name="amazon_electronics", path=str(path))
    before, stat = cache_key(cfg, path), path.stat()
    tree = {"data": {"path": str(path)}}
    fingerprint = base_fingerprint(tree, SearchConfig())
    path.write_text(path.read_text().replace("U1,", "U9,", 1))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert cache_key(cfg, path) != before
    assert base_fingerprint(tree, SearchConfig()) != fingerprint


@pytest.mark.parametrize(("text", "shown"), [
    ('search.storage="postgresql+psycopg://u:pw with space@host/db"',
     'search.storage="postgresql+psycopg://u:***@host/db"'),
    ("postgresql+psycopg://recsys@host/db?password=S3cr3t&sslmode=require",
     "postgresql+psycopg://recsys@host/db?password=***&sslmode=require"),
    ("postgresql+psycopg://u:p@ss@word@host/db", "postgresql+psycopg://u:***@host/db"),
    ("sqlite:///outputs/sweeps/default/study.db", "sqlite:///outputs/sweeps/default/study.db"),
])
def test_passwords_are_masked_whole(text: str, shown: str) -> None:
    """What the console, error lines and Hydra's .hydra/ copies get (app.py masks the
    command line it hands to Hydra with the same function)."""
    from experiments.cli.secrets import mask_secrets

    assert mask_secrets(text) == shown


def test_a_password_with_at_signs_never_reaches_the_error_line(tmp_path: Path, capsys) -> None:
    code, err = run_sweep(tmp_path, capsys,
                          "search.storage=postgresql+psycopg://u:p@ss@word@127.0.0.1:1/db")
    assert code == 2 and len(err) == 1 and "u:***@127.0.0.1:1/db" in err[0], err
    assert "ss@word" not in err[0] and "p@ss" not in err[0]


def test_a_study_that_completes_no_trial_says_so_and_fails(tmp_path: Path, capsys) -> None:
    code, err = run_sweep(tmp_path, capsys, "search.timeout=0.001")
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("error: no trial completed before search.timeout=0.001 s ran out")
    assert not (tmp_path / "study" / "best").exists()


def test_exclude_seen_counts_the_excluded_items_against_k(tmp_path: Path, capsys) -> None:
    """A user who rated 25 of 30 items: with seen items excluded, 5 candidates are left, so
    top-10 would be 1.0 for every scorer. Refused, naming the counts; without exclude_seen the
    same k is fine."""
    heavy = [f"H,P{j},5.0,{2000 + j}" for j in range(30)]
    path = write_lines(tmp_path / "r.csv", RATINGS + heavy)
    code, err = run_train(tmp_path, capsys, *amazon(path), "eval.exclude_seen=true")
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: eval.exclude_seen=true leaves a held-out user ")
    assert "not more than k=10 of train.top_ks: every scorer would score 1.0" in err[0]
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_one_item_catalog_says_there_is_nothing_to_rank(tmp_path: Path, capsys) -> None:
    path = write_lines(tmp_path / "r.csv", [f"U{i},P1,5.0,{1000 + i}" for i in range(50)])
    code, err = run_train(tmp_path, capsys, *amazon(path))
    assert code == 2 and err == ["error: the catalog holds 1 item(s) after data.min_item_ratings"
                                 "=1: there is nothing to rank; use data with more items or a "
                                 "lower data.min_item_ratings"]


@pytest.mark.slow
def test_a_home_tilde_in_search_dir_and_cache_dir_is_the_home_folder(tmp_path: Path) -> None:
    """`~` meant the home folder in data.path only: search.dir and data.cache_dir made a
    folder named `~` in the working directory, and the printed commands pointed home."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "experiments.sweep", *TINY_SYNTHETIC, "train.epochs=1",
         "search.n_trials=1", "search.dir='~/studies/t'", "data.cache_dir='~/cache'"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(work.iterdir()) == []
    assert (home / "studies" / "t" / "study.db").is_file() and (home / "cache").is_dir()
    assert f"--logdir {home / 'studies' / 't' / 'trials'}" in done.stdout


def test_spaces_around_ids_are_trimmed_with_a_note(tmp_path: Path, capsys) -> None:
    """' U1 ' and 'U1' were two users, silently: trimmed, one user, and the console says so."""
    spaced = [f" U{i % 50} ,P{i % 30} ,{1 + i % 5}.0,{5000 + i}" for i in range(40)]
    path = write_lines(tmp_path / "r.csv", RATINGS + spaced)
    code = train.main([f"data.cache_dir={tmp_path / 'cache'}", *TINY_TRAIN,
                       f"hydra.run.dir={tmp_path / 'run'}", *amazon(path)])
    out = capsys.readouterr().out
    assert code == 0 and "note: 80 user or item id(s) had spaces around them and were trimmed" in out
    import json

    stats = json.loads((tmp_path / "run" / "metrics.json").read_text())["data_stats"]
    assert stats["catalog_items"] == 30  # not 60: ' P1 ' is P1
    assert stats["split"] == "random"  # the split is named beside the data it made


def test_a_header_with_the_rating_column_twice_is_refused(tmp_path: Path, capsys) -> None:
    lines = ["userId,movieId,rating,rating,timestamp",
             *[f"{i % 50},{i % 30},{1 + i % 5}.0,1.0,{1000 + i}" for i in range(400)]]
    path = write_lines(tmp_path / "r.csv", lines)
    code, err = run_train(tmp_path, capsys, "data=movielens", f"data.path={path}",
                          "train.top_ks=[1,10]")
    assert code == 2 and err == [f"error: data.path='{path}': the header names column 'rating' "
                                 "2 times, and data.rating_column reads it: rename the copies, "
                                 "or point the setting at another column"]


@pytest.mark.parametrize("separator", ["'\\t'", "tab"])
def test_a_tab_separator_written_as_backslash_t_or_tab_reads_a_tab_file(
        tmp_path: Path, capsys, separator: str) -> None:
    """data.separator='\\t' arrives as two characters: it was refused with a suggestion to
    write '\\t', which failed the same way."""
    path = write_lines(tmp_path / "r.tsv", [r.replace(",", "\t") for r in RATINGS])
    code = train.main([f"data.cache_dir={tmp_path / 'cache'}", *TINY_TRAIN, "train.epochs=1",
                       f"hydra.run.dir={tmp_path / 'run'}", *amazon(path),
                       f"data.separator={separator}"])
    assert code == 0, capsys.readouterr().err


def test_an_unquoted_search_expression_says_how_to_write_it(tmp_path: Path, capsys) -> None:
    """`search.params.model.embedding_dim=choice(8, 256)` said "requires --multirun", and
    following that gave Hydra's six-line error: the line gives the form that works."""
    code, err = run_sweep(tmp_path, capsys, "search.params.model.embedding_dim=choice(8, 256)")
    assert code == 2 and err == [
        "error: cannot read the override 'search.params.model.embedding_dim=choice(8, 256)': "
        "Hydra takes 'choice(8, 256)' for a sweep of its own; a search expression goes in "
        "search.params as quoted text, e.g. "
        "'++search.params={model.embedding_dim: \"choice(8, 256)\"}'"]
    assert not (tmp_path / "study").exists()


def test_the_quoting_hint_for_a_path_with_a_quote_works_in_a_shell(tmp_path: Path,
                                                                    capsys) -> None:
    """The hint wrapped the value in the shell's single quotes, which a `'` in it breaks:
    the hint, split as a shell splits it (shlex), now reads the file."""
    import re
    import shlex

    path = write_lines(tmp_path / "it's (1).csv", RATINGS)
    code, err = run_train(tmp_path, capsys, *amazon(path)[:1], *amazon(path)[2:],
                          f"data.path={path}")
    assert code == 2 and len(err) == 1
    hint = re.search(r"e\.g\. (\".*\") \(the outer double quotes are for the shell\)", err[0])
    assert hint, err
    (argument,) = shlex.split(hint.group(1))
    code, err = run_train(tmp_path, capsys, *amazon(path)[:1], *amazon(path)[2:], argument)
    assert code == 0, err


@pytest.mark.parametrize("name", ["x" * 300, 'a\x1b[31mb', "two\nlines"])
def test_a_study_name_no_folder_can_hold_is_one_line(tmp_path: Path, capsys, name: str) -> None:
    """Too long for a file name (OSError: File name too long), or holding control characters
    (an escape that recolours the terminal, a newline that splits a table row)."""
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    for command in (sweep.main, report.main):
        code = command([f"search.dir={tmp_path / 'study'}", f'search.study_name="{quoted}"'])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith("error: search.study_name=") and "\x1b" not in err[0]
    assert not (tmp_path / "study").exists()


def test_control_characters_in_console_text_are_escaped() -> None:
    from experiments.cli.console import printable

    assert printable("a\x1b[31mb\nc\td é") == "a\\x1b[31mb\\nc\\td é"
