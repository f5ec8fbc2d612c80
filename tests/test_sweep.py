"""`python -m experiments.sweep` end to end on tiny data (real SQLite storage, real TF runs)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import tensorflow as tf
import yaml
from conftest import TINY_SYNTHETIC, TINY_TRAIN, small_disk
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from experiments import sweep, train
from experiments.cli.compose import compose_run
from experiments.sweeping.objective import Objective
from experiments.sweeping.plan import group_options
from experiments.sweeping.space import parse_space
from recsys.serving import load_vectors

SPACE = ("+search.params={optimizer: 'choice(adagrad, sgd)', "
         "optimizer.learning_rate: 'tag(log, interval(0.01, 0.3))', "
         "model.embedding_dim: 'choice(8, 16)'}")
ENQUEUE = ("search.enqueue_trials=[{optimizer: adagrad, optimizer.learning_rate: 0.2, "
           "model.embedding_dim: 16}, {optimizer: sgd, optimizer.learning_rate: 1e-6, "
           "model.embedding_dim: 8}]")


def sweep_args(tmp_path: Path, name: str, n_trials: int, *extra: str) -> list[str]:
    return [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
            f"search.study_name={name}", f"search.dir={tmp_path / name}",
            f"search.n_trials={n_trials}", "~search.params", SPACE, "search.enqueue_trials=[]",
            "search.sampler.n_startup_trials=2",
            "search.pruner.name=median", "search.pruner.n_startup_trials=1",
            "search.pruner.n_warmup_steps=0", *extra]


def load(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / name / 'study.db'}")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-trial study: enqueued good trial, enqueued hopeless one (pruned), one TPE trial."""
    tmp = tmp_path_factory.mktemp("sweep")
    assert sweep.main(sweep_args(tmp, "s", 3, ENQUEUE)) == 0
    return tmp


@pytest.mark.slow
def test_sweep_prunes_records_and_exports(study_dir: Path, capsys) -> None:
    study = load(study_dir, "s")
    states = [t.state for t in study.trials]
    assert len(states) == 3
    assert states[1] == optuna.trial.TrialState.PRUNED  # lr 1e-6 SGD is pruned after epoch 1
    assert "pruned after epoch 1" in study.trials[1].user_attrs["reason"]
    best = study.best_trial
    attrs = best.user_attrs
    assert set(attrs) >= {"overrides", "run_dir", "metrics", "popularity", "seconds",
                          "train_seconds"}
    assert attrs["metrics"]["val_top_100"] == best.value
    assert 0 < attrs["metrics"]["test_top_100"] <= 1
    folder = study_dir / "s"
    for n in range(3):
        assert (folder / "trials" / str(n) / "config.yaml").exists()
    exported = json.loads((folder / "best" / "params.json").read_text())
    assert exported["trial"] == best.number and exported["params"] == best.params
    config = yaml.safe_load((folder / "best" / "config.yaml").read_text())
    assert config["optimizer"]["name"] == best.params["optimizer"]
    assert not list(folder.glob(".best*"))
    # best/ is as readable as the rest of the study (mkdtemp alone would make it 0700)
    assert (folder / "best").stat().st_mode & 0o777 == folder.stat().st_mode & 0o777


@pytest.mark.slow
def test_exported_best_config_reproduces_validation_metric(study_dir: Path, tmp_path: Path) -> None:
    best = load(study_dir, "s").best_trial
    config = study_dir / "s" / "best" / "config.yaml"
    assert train.main(["--config", str(config), f"hydra.run.dir={tmp_path / 'rerun'}"]) == 0
    rerun = json.loads((tmp_path / "rerun" / "metrics.json").read_text())
    assert abs(rerun["metrics"]["val_top_100"] - best.value) <= 0.005


@pytest.mark.slow
def test_printed_rerun_command_runs_from_the_studys_parent_folder(study_dir: Path) -> None:
    """The sweep prints `--config <search.dir>/best/config.yaml`, relative when search.dir is
    (the default `outputs/sweeps/<name>`): that exact path must run from the folder it is
    relative to. Two such runs started together get a folder each, and no empty dated folder
    is left beside them."""
    command = [sys.executable, "-m", "experiments.train", "--config", "s/best/config.yaml"]
    procs = [subprocess.Popen(command, cwd=study_dir, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    runs = sorted((study_dir / "outputs" / "runs").iterdir())
    assert len(runs) == 2, runs
    for run in runs:
        assert (run / "metrics.json").exists() and (run / "config.yaml").exists()
    best = load(study_dir, "s").best_trial
    rerun = json.loads((runs[0] / "metrics.json").read_text())
    assert abs(rerun["metrics"]["val_top_100"] - best.value) <= 0.005


@pytest.mark.slow
def test_resume_stops_at_n_trials_in_total(study_dir: Path, capsys) -> None:
    capsys.readouterr()
    assert sweep.main(sweep_args(study_dir, "s", 4)) == 0
    out = capsys.readouterr().out
    assert "resuming study 's'" in out and "3 of 4 trials already finished" in out
    assert len(load(study_dir, "s").trials) == 4
    assert sweep.main(sweep_args(study_dir, "s", 4)) == 0
    assert len(load(study_dir, "s").trials) == 4
    assert "4 of 4 trials already finished; to add trials, run it again with " \
           "search.n_trials=8" in capsys.readouterr().out
    # Fewer than it has: the hint still adds trials (it said n_trials=4, which adds none).
    assert sweep.main(sweep_args(study_dir, "s", 2)) == 0
    assert len(load(study_dir, "s").trials) == 4
    assert "4 of 2 trials already finished; to add trials, run it again with " \
           "search.n_trials=6" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_with_other_data_or_space_is_refused_naming_the_keys(study_dir: Path,
                                                                     capsys) -> None:
    before = len(load(study_dir, "s").trials)
    for extra, named in ((["data.synthetic.n_items=250"], "data.synthetic.n_items (300 -> 250)"),
                         ([SPACE.replace("choice(8, 16)", "choice(8, 32)")],
                          "search.params.model.embedding_dim (choice(8, 16) -> choice(8, 32))")):
        args = sweep_args(study_dir, "s", 9)
        args[args.index(SPACE)] = extra[0] if extra[0].startswith("+") else SPACE
        args += [] if extra[0].startswith("+") else extra
        capsys.readouterr()
        assert sweep.main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and named in err[0] and "was created with other settings" in err[0]
        assert len(load(study_dir, "s").trials) == before


def session_groups(logdir: Path) -> dict[str, api_pb2.SessionGroup]:
    """What TensorBoard's HParams dashboard lists for `logdir`: its own backend (the
    plugin's ListSessionGroups handler over TensorBoard's event multiplexer)."""
    from tensorboard import context as tb_context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context, list_session_groups

    mux = pem.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    tb = base_plugin.TBContext(logdir=str(logdir), multiplexer=mux,
                               data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir)))
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=1000, allowed_statuses=[
        api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE,
        api_pb2.STATUS_RUNNING])
    response = list_session_groups.Handler(tb_context.RequestContext(),
                                           backend_context.Context(tb), "", request).run()
    return {g.name: g for g in response.session_groups}


@pytest.mark.slow
def test_tensorboard_tells_trials_of_two_studies_apart(study_dir: Path) -> None:
    """Study `s` (complete and pruned trials) and study `t` (a failed trial) under one logdir:
    sessions named <study>/<trial> (zero-padded: they sort numerically), status and state set,
    integers kept, test metrics and the baselines as a run on the same tags."""
    diverging = ("search.enqueue_trials=[{optimizer: sgd, optimizer.learning_rate: 1e9, "
                 "model.embedding_dim: 8}]")
    assert sweep.main(sweep_args(study_dir, "t", 1, diverging, "search.pruner.name=none")) == 0
    groups = session_groups(study_dir)  # the README's `tensorboard --logdir` over both
    kinds = {}
    for name in ("s", "t"):
        for trial in load(study_dir, name).trials:
            group = groups[f"{name}/{trial.number:04d}"]  # no merging across studies
            (one,) = group.sessions
            state = group.hparams["State"].string_value
            kinds[state] = one.status
            assert state == {"COMPLETE": "complete", "PRUNED": "pruned",
                             "FAIL": "failed"}[trial.state.name]
            # integers as written: a string hparam ("16"), not the number 16 shown as 16.000
            assert group.hparams["model.embedding_dim"].string_value == \
                str(trial.params["model.embedding_dim"])
            # a searched range stays a number (an axis in the dashboard's plots)
            lr = next(v for k, v in trial.params.items() if k.startswith("optimizer.learning"))
            assert group.hparams["optimizer.learning_rate"].number_value == pytest.approx(lr)
            metrics = {m.name.tag: m.value for m in group.metric_values}
            if state == "complete":
                assert metrics["selected/test_top_100"] == pytest.approx(
                    trial.user_attrs["metrics"]["test_top_100"])
            if state == "pruned":  # its last reported value, not a blank
                last = trial.intermediate_values[max(trial.intermediate_values)]
                assert metrics["selected/val_top_100"] == pytest.approx(last)
    assert len(groups) == len(load(study_dir, "s").trials) + len(load(study_dir, "t").trials)
    assert kinds == {"complete": api_pb2.STATUS_SUCCESS, "pruned": api_pb2.STATUS_FAILURE,
                     "failed": api_pb2.STATUS_FAILURE}

    best = load(study_dir, "s").best_trial
    events = EventAccumulator(str(study_dir / "s" / "trials" / str(best.number)),
                              size_guidance={"tensors": 0})
    events.Reload()
    assert [e.step for e in events.Tensors("epoch/val_top_100")] == [1, 2]
    (test,) = events.Tensors("selected/test_top_100")
    assert float(tf.make_ndarray(test.tensor_proto)) == pytest.approx(
        best.user_attrs["metrics"]["test_top_100"])
    from experiments.sweeping.hparams import experiment_run

    assert not list((study_dir / "s" / "trials").glob("events.out.tfevents.*"))  # no `.` run
    root = EventAccumulator(str(experiment_run(study_dir / "s" / "trials")))
    root.Reload()
    summaries = [plugin_data_pb2.HParamsPluginData.FromString(c)
                 for c in root.PluginTagToContent("hparams").values()]
    experiment = next(s.experiment for s in summaries if s.HasField("experiment"))
    infos = {h.name: h for h in experiment.hparam_infos}
    assert set(infos) == {"optimizer", "optimizer.learning_rate", "model.embedding_dim",
                          "State"}
    assert sorted(infos)[0] == "State"  # the dashboard ticks the first five by name
    assert infos["optimizer.learning_rate"].display_name == "learning_rate"
    assert set(infos["model.embedding_dim"].domain_discrete) == {"8", "16"}
    assert [m.name.tag for m in experiment.metric_infos][0] == "selected/val_top_100"
    # one naming style: each metric shown by its own name
    assert all(m.display_name == m.name.tag.removeprefix("selected/")
               for m in experiment.metric_infos)
    assert {m.name.tag for m in experiment.metric_infos} >= {"selected/val_top_100",
                                                             "selected/test_top_100"}
    popularity = EventAccumulator(str(study_dir / "s" / "trials" / "baselines" / "popularity"),
                                  size_guidance={"tensors": 0})
    popularity.Reload()
    line = popularity.Tensors("epoch/val_top_100")
    assert "epoch_other/val_top_1" in popularity.Tags()["tensors"]
    assert len(line) >= 1 and float(tf.make_ndarray(line[0].tensor_proto)) == pytest.approx(
        best.user_attrs["popularity"]["val_top_100"])
    assert load(study_dir, "s").metric_names == ["val_top_100"]


@pytest.mark.slow
def test_diverging_trial_fails_with_reason_and_study_completes(tmp_path: Path) -> None:
    enqueue = ("search.enqueue_trials=[{optimizer: sgd, optimizer.learning_rate: 1e9, "
               "model.embedding_dim: 8}]")
    args = sweep_args(tmp_path, "diverge", 2, enqueue, "~search.params",
                      "+search.params={optimizer: 'choice(adagrad, sgd)', "
                      "optimizer.learning_rate: 'tag(log, interval(0.01, 0.5))', "
                      "model.embedding_dim: 'choice(8, 16)'}", "search.pruner.name=none")
    args.remove(SPACE)
    args.remove("~search.params")
    assert sweep.main(args) == 0
    study = load(tmp_path, "diverge")
    first = study.trials[0]
    assert first.state == optuna.trial.TrialState.FAIL
    assert "training loss became" in first.user_attrs["reason"].lower()
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 2 and study.best_trial.number != 0


def test_objective_with_fixed_trial(tmp_path: Path) -> None:
    overrides = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN]
    base = compose_run(overrides)[0]
    space = parse_space({"model.embedding_dim": "choice(8, 16)",
                         "optimizer.learning_rate": "tag(log, interval(0.01, 0.5))"}, {}, base,
                        group_options())
    objective = Objective(space, overrides, tmp_path / "study", "val_top_100")
    trial = optuna.trial.FixedTrial({"model.embedding_dim": 16, "optimizer.learning_rate": 0.2},
                                    number=7)
    value = objective(trial)
    metrics = json.loads((tmp_path / "study" / "trials" / "7" / "metrics.json").read_text())
    assert value == metrics["metrics"]["val_top_100"]
    config = yaml.safe_load((tmp_path / "study" / "trials" / "7" / "config.yaml").read_text())
    assert config["model"]["embedding_dim"] == 16 and config["optimizer"]["learning_rate"] == 0.2
    assert trial.user_attrs["overrides"] == ["model.embedding_dim=16",
                                             "optimizer.learning_rate=0.2"]
    # A heartbeat retry starts with the failed trial's attributes, its reason too: a retried
    # trial that completes carries no inherited "interrupted" label.
    from experiments.sweeping.trials import INTERRUPTED

    retried = optuna.trial.FixedTrial({"model.embedding_dim": 8,
                                       "optimizer.learning_rate": 0.2}, number=8)
    retried.set_user_attr("reason", INTERRUPTED)
    objective(retried)
    assert retried.user_attrs["reason"] == ""


@pytest.mark.parametrize(("extra", "message"), [
    (["search.metric=val_top_1000"], "search.metric='val_top_1000' is not a validation metric: "
                                     "available are val_top_1, val_top_5"),
    (["search.metric=test_top_100"], "not a validation metric"),
    (["++search.params={optimizer.learning_rate: 'interval(1)'}"], "is malformed"),
    (["++search.params={model.embeding_dim: 'choice(8, 16)'}"],
     "'model.embeding_dim' is not a config key"),
    (["search.storage=mongodb://u:hunter2@localhost/x"], "unknown scheme 'mongodb'"),
    (["++search.params={data.sample_fraction: 'interval(0.0, 1.0)'}"],
     "reaches an invalid value: data.sample_fraction=0.0"),
    (["search.enqueue_trials=[{optimizer: adam, model.embedding_dim: 7}]"],
     "search.enqueue_trials sets model.embedding_dim=7, which is not one of its choices: 16, "),
    (["search.enqueue_trials=[{optimizer: sgd}]"],
     "search.enqueue_trials sets optimizer=sgd, which is not one of its choices: adam, adagrad"),
])
def test_bad_search_config_is_one_line_and_writes_nothing(tmp_path: Path, capsys, extra,
                                                          message) -> None:
    args = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
            f"search.dir={tmp_path / 'study'}", *extra]
    assert sweep.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert "hunter2" not in err[0]
    assert not (tmp_path / "study").exists()


def test_existing_study_with_other_direction_is_refused_untouched(tmp_path: Path, capsys) -> None:
    storage = f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    (tmp_path / "study").mkdir()
    optuna.create_study(study_name="default", storage=storage, direction="minimize")
    before = (tmp_path / "study" / "study.db").read_bytes()
    args = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
            f"search.dir={tmp_path / 'study'}"]
    assert sweep.main(args) == 2
    assert "exists with direction=minimize" in capsys.readouterr().err
    assert (tmp_path / "study" / "study.db").read_bytes() == before
    assert not (tmp_path / "study" / "trials").exists()


LOAD_IN_FRESH_PROCESS = """
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
users = json.loads(sys.argv[2])
out = {}
for k in (3, 17):
    res = model.recommend(tf.constant(users), tf.constant(k), tf.constant(False))
    out[k] = [[i.decode() for i in row] for row in res["item_ids"].numpy()]
out["known"] = res["known_user"].numpy().tolist()
out["foreign"] = sorted(m for m in sys.modules if m.split(".")[0] in ("recsys", "experiments"))
print(json.dumps(out))
"""


@pytest.mark.slow
def test_best_model_loads_with_plain_tensorflow_and_k_is_chosen_at_call_time(
        study_dir: Path) -> None:
    import subprocess
    import sys

    import numpy as np

    best = load(study_dir, "s").best_trial
    vectors = load_vectors(Path(best.user_attrs["run_dir"]) / "vectors.npz")
    users = [str(vectors["user_ids"][1]), str(vectors["user_ids"][2]), "no-such-user", ""]
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(study_dir / "s" / "best" / "model"),
         json.dumps(users)], capture_output=True, text=True, timeout=120, cwd=study_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["foreign"] == []
    assert out["known"] == [True, True, False, False]
    catalog = set(vectors["item_ids"].tolist())
    for k in ("3", "17"):
        assert all(len(row) == int(k) and set(row) <= catalog for row in out[k])
    assert out["17"][0][:3] == out["3"][0]  # the same ranking, cut at k
    assert out["3"][2] == out["3"][3]  # unknown users share the popular list
    popular = vectors["item_ids"][np.argsort(-vectors["item_counts"], kind="stable")[:3]]
    assert out["3"][2] == popular.tolist()


@pytest.mark.slow
def test_recommend_cli_for_known_and_unknown_users(study_dir: Path, tmp_path: Path,
                                                   capsys) -> None:

    from experiments import recommend

    model_dir = study_dir / "s" / "best" / "model"
    best = load(study_dir, "s").best_trial
    user = str(load_vectors(Path(best.user_attrs["run_dir"]) / "vectors.npz")["user_ids"][1])
    assert recommend.main([str(model_dir), user, "--k", "5", "--include-seen"]) == 0
    out = capsys.readouterr().out
    assert f"top 5 items for user '{user}':" in out and len(out.strip().splitlines()) == 6
    # By default the user's own training items are left out, and --titles names the items.
    vectors = load_vectors(Path(best.user_attrs["run_dir"]) / "vectors.npz")
    index = list(vectors["user_ids"]).index(user)
    seen = set(vectors["item_ids"][vectors["train_item"][vectors["train_user"] == index]])
    titles = tmp_path / "movies.csv"
    titles.write_text("itemId,title,genres\n" + "".join(
        f'{item},"Title of {item}, a film",Drama\n' for item in vectors["item_ids"]))
    assert recommend.main([str(model_dir), user, "--k", "50", "--titles", str(titles)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"top 50 items for user '{user}' (items rated in training left out):"
    listed = [line.split()[1] for line in lines[1:51]]
    assert len(listed) == 50 and not set(listed) & seen
    assert all(line.endswith(f"Title of {item}, a film")
               for line, item in zip(lines[1:51], listed, strict=True))
    for unknown in ("nobody-at-all", ""):
        assert recommend.main([str(model_dir), unknown, "--k", "4", "--exclude-seen"]) == 0
        out = capsys.readouterr().out
        assert "is not in the model's training data: showing the 4 most popular items" in out
    assert recommend.main([str(model_dir), user, "--k", "0"]) == 2
    assert "--k 0 is invalid: expected 1 to" in capsys.readouterr().err


@pytest.mark.slow
def test_exclude_seen_leaves_out_training_items(study_dir: Path) -> None:
    import numpy as np
    import tensorflow as tf

    best = load(study_dir, "s").best_trial
    vectors = load_vectors(Path(best.user_attrs["run_dir"]) / "vectors.npz")
    counts = np.bincount(vectors["train_user"])
    index = int(np.argmax(counts))  # the most active user
    seen = set(vectors["item_ids"][vectors["train_item"][vectors["train_user"] == index]])
    model = tf.saved_model.load(str(study_dir / "s" / "best" / "model"))
    user = tf.constant([str(vectors["user_ids"][index])])
    k = tf.constant(50)
    plain = {i.decode() for i in model.recommend(user, k, tf.constant(False))["item_ids"][0].numpy()}
    fresh = {i.decode() for i in model.recommend(user, k, tf.constant(True))["item_ids"][0].numpy()}
    assert plain & seen  # the model does rank some of the user's own items high
    assert not fresh & seen and len(fresh) == 50


@pytest.mark.slow
def test_confirmation_retrains_the_best_trials_and_best_is_the_mean_winner(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import recsys.cache
    import recsys.training
    from experiments.cli import console

    reads = []  # the prepared data is read once, by the set-up; trials and confirmation reuse it

    def counted(cfg):  # noqa: ANN001, ANN202
        reads.append(cfg)
        return load_prepared(cfg)

    load_prepared = recsys.cache.load_prepared
    for module in (recsys.cache, recsys.training, console):  # each binds the name
        monkeypatch.setattr(module, "load_prepared", counted)
    args = sweep_args(tmp_path, "confirm", 3, "search.pruner.name=none", "~search.params",
                      "+search.params={optimizer.learning_rate: 'tag(log, interval(0.02, 0.3))'}",
                      "~search.conditional_params", "optimizer=adagrad", "search.confirm.top_n=2",
                      "search.confirm.seeds=2")
    args.remove(SPACE)
    args.remove("~search.params")
    assert sweep.main(args) == 0
    assert len(reads) == 1  # not 1 + 1 for the trials + 4 for the confirmation runs
    out = capsys.readouterr().out
    study = load(tmp_path, "confirm")
    record = study.user_attrs["confirm"]
    ranked = sorted(study.trials, key=lambda t: t.value, reverse=True)[:2]
    assert sorted(record) == sorted(str(t.number) for t in ranked)
    for key, runs in record.items():
        trial = study.trials[int(key)]
        assert len(runs["val"]) == 3 and runs["val"][0] == trial.value  # the trial + 2 seeds
        assert len(set(runs["seeds"])) == 3
    means = {int(k): sum(r["val"]) / len(r["val"]) for k, r in record.items()}
    winner = max(means, key=means.get)
    exported = json.loads((tmp_path / "confirm" / "best" / "params.json").read_text())
    assert exported["trial"] == winner
    metrics = json.loads((tmp_path / "confirm" / "best" / "metrics.json").read_text())
    assert metrics["confirmation"]["runs"] == 3
    assert abs(metrics["confirmation"]["val_mean"] - means[winner]) < 1e-9
    assert "confirmation: each trial trained again" in out and "<- best/" in out
    # The same command again trains nothing more and keeps the choice.
    assert sweep.main(args) == 0
    assert load(tmp_path, "confirm").user_attrs["confirm"] == record


@pytest.mark.slow
def test_a_folder_holding_another_study_is_refused_untouched(study_dir: Path, capsys) -> None:
    folder = study_dir / "s"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    args = [f"data.cache_dir={study_dir / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
            "search.study_name=intruder", f"search.dir={folder}", "search.n_trials=1"]
    assert sweep.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: search.dir='{folder}' holds study 's', not 'intruder': its "
                   "trials/, best/ and report/ would be overwritten; use another search.dir "
                   "(the default, outputs/sweeps/intruder, is the study's own) or "
                   "search.study_name=s"]
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_report_keeps_best_model_when_the_trial_folder_is_gone_and_names_a_bad_file(
        study_dir: Path, tmp_path: Path, capsys) -> None:
    import shutil

    from experiments import report

    copy = tmp_path / "s"
    shutil.copytree(study_dir / "s", copy)
    args = ["study=s", f"search.dir={copy}"]  # a copied folder keeps its own study.db
    run_dir = Path(load(study_dir, "s").best_trial.user_attrs["run_dir"])
    vectors = run_dir / "vectors.npz"
    saved = vectors.read_bytes()
    moved = run_dir.with_name(run_dir.name + ".moved")
    try:
        vectors.write_bytes(saved[:1000])  # truncated: one line naming the file
        assert report.main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{vectors} cannot be read" in err[0], err
        assert (copy / "best" / "model" / "saved_model.pb").is_file()
        vectors.write_bytes(saved)
        run_dir.rename(moved)  # the best trial's folder moved away: best/model is kept
        assert report.main(args) == 0
        assert (copy / "best" / "model" / "saved_model.pb").is_file()
        out = capsys.readouterr().out
        assert "best" in out and (copy / "report" / "index.html").is_file()
        # best/ without its model and the trial folder gone: say so, and how to rebuild it
        shutil.rmtree(copy / "best" / "model")
        assert report.main(args) == 0
        out = capsys.readouterr().out
        assert f"note: {copy / 'best' / 'model'} is missing" in out
        assert f"--config {copy / 'best' / 'config.yaml'}" in out
    finally:
        if moved.exists():
            moved.rename(run_dir)
        vectors.write_bytes(saved)


@pytest.mark.slow
def test_a_study_folder_belongs_to_one_storage_and_study(tmp_path: Path, capsys) -> None:
    """The same study name on another storage, or a study created afresh after its database
    was deleted, would start over in the folder of the first: refused, the folder untouched."""
    args = sweep_args(tmp_path, "own", 1)
    assert sweep.main(args) == 0
    folder = tmp_path / "own"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    capsys.readouterr()

    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert sweep.main([*args, f"search.storage={other}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: search.dir='{folder}' holds study 'own' of search.storage="
                   f"'sqlite:///{folder / 'study.db'}', not of '{other}': its trials/, best/ "
                   "and report/ would be overwritten; use another search.dir, or the study's "
                   "own storage to resume it"]

    moved = folder / "study.db"
    moved.rename(tmp_path / "study.db.bak")
    assert sweep.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no study of that name (was its database deleted" in err[0]
    (tmp_path / "study.db.bak").rename(moved)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "other.db").exists()  # refused before the storage is opened
    assert sweep.main(args) == 0  # its own storage resumes it as before


@pytest.mark.slow
def test_a_full_disk_leaves_the_old_report_page_whole(study_dir: Path) -> None:
    """report/ on a 2 MB tmpfs (the page is ~4.8 MB): writing fails, and index.html is the old
    page, not the first part of a new one (mounting needs root, as CI runs; else skipped)."""
    from experiments.sweeping.outputs import write_report

    with small_disk(study_dir / "small-disk", "2m") as disk:
        old = "<html><body>the previous report</body></html>\n"
        (disk / "index.html").write_text(old)
        with pytest.raises(OSError):
            write_report(load(study_dir, "s"), disk, "val_top_100")
        assert (disk / "index.html").read_text() == old
        assert not [p.name for p in disk.iterdir() if ".tmp" in p.name]


@pytest.mark.slow
def test_report_ranks_on_the_studys_own_metric(tmp_path: Path, capsys) -> None:
    """A study searched on NDCG@10: `report` without search.metric ranks, marks and plots on
    NDCG@10 (it printed `ranked on val_top_100` and could mark another trial best)."""
    from experiments import report

    assert sweep.main(sweep_args(tmp_path, "ndcg", 2, "search.metric=val_ndcg_10")) == 0
    out = capsys.readouterr().out
    # The best trial against the strongest baseline, paired by user, on the study's metric.
    assert re.search(r"paired test of trial \d+: the model (beats|trails|is not "
                     r"distinguishable from) \S+ at ndcg_10: [+-]\d\.\d{4}, 95% \[", out)
    paired = json.loads((tmp_path / "ndcg" / "best" / "metrics.json").read_text())["comparison"]
    assert {row["metric"] for row in paired} == {"test_ndcg_10"}
    assert all(0 <= row["p_value"] <= 1 for row in paired)
    assert {row["baseline"] for row in paired} == {"popularity", "item-kNN (cosine)", "EASE",
                                                   "iALS", "transitions"}
    assert report.main(["study=ndcg", f"search.dir={tmp_path / 'ndcg'}"]) == 0
    out = capsys.readouterr().out
    assert "ranked on val_ndcg_10" in out and "ranked on val_top_100" not in out
    page = (tmp_path / "ndcg" / "report" / "index.html").read_text()
    assert "val_ndcg_10\n(maximize)" in page and "val_top_100\n(maximize)" not in page


@pytest.mark.slow
def test_a_suggestion_that_fails_says_why_on_the_trial_and_the_console(tmp_path: Path,
                                                                       capsys) -> None:
    """A resumed study whose choice list changed (allowed with allow_changed_base) cannot be
    suggested from: each trial failed with no reason until five stopped the study."""
    assert sweep.main(sweep_args(tmp_path, "changed", 1)) == 0
    changed = [a.replace("choice(8, 16)", "choice(8, 32)") for a in sweep_args(
        tmp_path, "changed", 2, "search.allow_changed_base=true")]
    capsys.readouterr()
    assert sweep.main(changed) == 1
    out = capsys.readouterr().out
    assert "a changed choice list needs a new search.study_name" in out
    failed = [t for t in load(tmp_path, "changed").trials
              if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all("changed choice list" in t.user_attrs["reason"] for t in failed)


@pytest.mark.slow
def test_report_rebuilds_best_from_the_exported_trial_and_the_storage_record(
        tmp_path: Path, capsys) -> None:
    """The report exports the trial the sweep exported, built from the storage's record: not an
    older confirmation's pick, not a trial file edited or damaged since."""
    from experiments import report

    assert sweep.main(sweep_args(tmp_path, "own", 2, "search.pruner.name=none")) == 0
    folder, study = tmp_path / "own", load(tmp_path, "own")
    exported = json.loads((folder / "best" / "params.json").read_text())["trial"]
    other = 1 - exported
    # An older confirmation (from a run with other settings) that favoured the other trial.
    study.set_user_attr("confirm", {str(other): {"seeds": [1], "val": [2.0], "test": [0.0]}})
    run_dir = Path(study.trials[exported].user_attrs["run_dir"])
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    stored_dim = config["model"]["embedding_dim"]
    config["model"]["embedding_dim"] = 999
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "metrics.json").write_text('{"metrics"')  # cut short
    capsys.readouterr()
    # The folder spelled another way is the same study folder, with the same storage.
    assert report.main(["study=own", f"search.dir={tmp_path}/./own"]) == 0
    assert json.loads((folder / "best" / "params.json").read_text())["trial"] == exported
    best = yaml.safe_load((folder / "best" / "config.yaml").read_text())
    assert best["model"]["embedding_dim"] == stored_dim
    metrics = json.loads((folder / "best" / "metrics.json").read_text())
    assert metrics["metrics"] == study.trials[exported].user_attrs["metrics"]
    (run_dir / "config.yaml").unlink()
    assert report.main(["study=own", f"search.dir={folder}"]) == 0
    assert yaml.safe_load((folder / "best" / "config.yaml").read_text()) == best
    # A study added to since its last export: the best single run, and a note saying why.
    study.set_user_attr("exported", {"trial": other, "finished": 1})
    capsys.readouterr()
    assert report.main(["study=own", f"search.dir={folder}"]) == 0
    out = capsys.readouterr().out
    assert json.loads((folder / "best" / "params.json").read_text())["trial"] == \
        study.best_trial.number
    assert "trials its last confirmation did not see" in out


@pytest.mark.slow
def test_report_refuses_a_folder_holding_another_study_untouched(study_dir: Path,
                                                                 capsys) -> None:
    """The sweep's folder-owner check, applied by the report: another study's best/ and
    report/ would be overwritten."""
    from experiments import report

    folder = study_dir / "s"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert report.main(["study=long", f"search.dir={folder}",
                        f"search.storage=sqlite:///{folder / 'study.db'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"search.dir='{folder}' holds study 's', not 'long'" in err[0]
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before


def test_a_damaged_study_database_is_one_line(tmp_path: Path, capsys) -> None:
    """A torn page in study.db (a crash, a bad copy) failed deep inside a query with a
    116-line traceback: the file is read through once when opened, and named."""
    import numpy as np

    from experiments import report

    folder = tmp_path / "torn"
    folder.mkdir()
    study = optuna.create_study(study_name="torn", storage=f"sqlite:///{folder / 'study.db'}")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=30)
    database = folder / "study.db"
    with database.open("r+b") as f:  # one random 4 KB page, as `dd … conv=notrunc`
        f.seek(4096 * 3)
        f.write(np.random.default_rng(0).bytes(4096))
    assert report.main(["study=torn", f"search.dir={folder}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"'{database}' is damaged (" in err[0], err


@pytest.mark.slow
def test_a_model_with_truncated_variables_is_named(study_dir: Path, tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(study_dir / "s" / "best" / "model", model)
    (data,) = (model / "variables").glob("variables.data-*")
    data.write_bytes(data.read_bytes()[:100])
    proc = subprocess.run([sys.executable, "-m", "experiments.recommend", str(model), "U1"],
                          capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert f"'{model}' is not a readable exported model" in errors[0]
    assert "Traceback" not in proc.stderr


def test_report_of_a_study_without_complete_trials_is_one_note(tmp_path: Path, capfd) -> None:
    """Five `[W …] There are no complete trials.` lines and a matplotlib UserWarning with its
    source line, before: one note now. A `.study-name` that is not text is read as no mark."""
    from experiments import report

    folder = tmp_path / "allfail"
    folder.mkdir()
    study = optuna.create_study(study_name="allfail", storage=f"sqlite:///{folder / 'study.db'}",
                                direction="maximize")
    for _ in range(3):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    (folder / ".study-name").write_bytes(b"\xff\xfe")
    capfd.readouterr()
    assert report.main(["study=allfail", f"search.dir={folder}"]) == 0
    out, err = capfd.readouterr()
    assert "[W " not in out + err and "Warning" not in out + err, out + err
    assert out.count("note: ") == 1 and "no trial has completed" in out
    assert "0 complete, 0 pruned, 3 failed" in out
    assert (folder / "report" / "index.html").is_file() and not (folder / "best").exists()


def test_one_storage_however_it_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder's recorded storage against the one given: a SQLite file by its resolved path
    (./x is x), the folder's own study.db wherever the folder now is, a server without the
    user (another user on the same database is the same storage)."""
    from experiments.sweeping.folder import same_storage, storage_record

    monkeypatch.chdir(tmp_path)
    own = tmp_path / "s"
    assert storage_record(f"sqlite:///{own / 'study.db'}", own) == \
        storage_record("sqlite:///./s/study.db", own)
    assert same_storage(storage_record("sqlite:///s/study.db", own), "sqlite:///./s/study.db", own)
    moved = tmp_path / "moved"
    assert same_storage(storage_record("sqlite:///s/study.db", own),
                        f"sqlite:///{moved / 'study.db'}", moved)
    assert same_storage("sqlite:///s/study.db", "sqlite:///./s/study.db", own)  # an old mark
    assert not same_storage(storage_record("sqlite:///s/study.db", own), "sqlite:///x.db", own)
    pg = "postgresql+psycopg://alice:pw@db:5432/studies"
    assert same_storage(storage_record(pg, own), "postgresql+psycopg://bob:x@db:5432/studies", own)
    assert not same_storage(storage_record(pg, own), "postgresql+psycopg://alice:pw@db/other", own)


def test_an_unnamed_study_is_named_after_its_data_file() -> None:
    from experiments.cli.resolvers import study_name_for
    assert study_name_for("synthetic", None) == "default"
    assert study_name_for("movielens", "/d/ml-latest-small/ratings.csv") == \
        "default-movielens-ml-latest-small-ratings"
    assert study_name_for("amazon_electronics", "/x y/ratings_Electronics.csv.gz", "wide") == \
        "wide-amazon_electronics-x_y-ratings_Electronics"


@pytest.mark.slow
def test_a_first_study_on_a_new_file_runs_without_a_name(tmp_path: Path, monkeypatch,
                                                         capsys) -> None:
    monkeypatch.chdir(tmp_path)
    base = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
            "search.n_trials=1", "search.enqueue_trials=[]", "search.confirm.top_n=0"]
    assert sweep.main(base) == 0  # the README's command: study `default` on the embedded data
    mine = tmp_path / "mine"
    mine.mkdir()
    generated = next((tmp_path / "cache" / "synthetic").glob("*.csv"))
    (mine / "ratings.csv").write_bytes(generated.read_bytes())
    capsys.readouterr()
    # the next step a user takes: the same command pointed at a file of their own
    assert sweep.main([*base, f"data.path={mine / 'ratings.csv'}"]) == 0
    out = capsys.readouterr().out
    assert "starting study 'default-synthetic-mine-ratings'" in out
    assert len(load(tmp_path / "outputs" / "sweeps", "default-synthetic-mine-ratings").trials) == 1
    assert len(load(tmp_path / "outputs" / "sweeps", "default").trials) == 1
    # a name the user gives stays strict: `default` now holds another file's study
    assert sweep.main([*base, f"data.path={mine / 'ratings.csv'}",
                       "search.study_name=default"]) == 2
    assert "was created with other settings" in capsys.readouterr().err
