"""The commands behave as Hydra applications (`--help`, `--cfg job`, `-m`, `.hydra/`) and
their console holds what the user needs and no TensorFlow start-up noise."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, TINY_SYNTHETIC, TINY_TRAIN

NOISE = re.compile(r"cuInit|absl|cudart|cpu_feature_guard|^[IWE]\d{4} |retracing|"
                   r"Traceback|oneDNN|WARNING|^\[[IWE] \d{4}-", re.MULTILINE)


def command(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """As from a user's shell: without the log settings this test process has picked up."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "RECSYS_VERBOSE", "HYDRA_FULL_ERROR")}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**env, "PYTHONPATH": str(REPO)})


def test_help_lists_groups_keys_and_their_comments(tmp_path: Path) -> None:
    proc = command("experiments.train", "--help", "data=movielens", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "data: amazon_electronics, movielens, movielens_100k, synthetic" in out
    assert "optimizer: adagrad, adam, sgd" in out
    groups = out.split("== Flags ==")[0]
    assert "schema" not in groups  # the internal type-checking groups are not choices
    # The chosen options' files, comments included (data=movielens was chosen).
    assert "# data=movielens  (conf/data/movielens.yaml)" in out
    assert "seed: 42                    # fixes initialization and data order" in out
    assert "-m, --multirun" in out and "--config SAVED.yaml" in out
    assert not (tmp_path / "outputs").exists()
    sweep = command("experiments.sweep", "-h", cwd=tmp_path)
    assert sweep.returncode == 0 and "search: default, wide" in sweep.stdout
    assert "n_trials" in sweep.stdout  # conf/search/default.yaml with its comments


def test_shell_completion_is_hydras_own(tmp_path: Path) -> None:
    """`-sc install=bash`: its word is Hydra's, not an override to compose."""
    proc = command("experiments.sweep", "-sc", "install=bash", cwd=tmp_path)
    assert proc.returncode == 0 and "hydra_bash_completion()" in proc.stdout, proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_cfg_job_prints_the_composed_config_and_runs_nothing(tmp_path: Path) -> None:
    proc = command("experiments.train", "--cfg", "job", "model.embedding_dim=8",
                   "optimizer=adagrad", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["model"]["embedding_dim"] == 8 and cfg["optimizer"]["name"] == "adagrad"
    assert "hydra" not in cfg and not (tmp_path / "outputs").exists()
    assert "# unused" not in proc.stdout  # the embedded data reads every key it prints
    # keys every option carries but this one ignores are named after the config
    movielens = command("experiments.train", "--cfg", "job", "data=movielens",
                        "data.path=r.csv", cwd=tmp_path)
    assert movielens.stdout.splitlines()[-2:] == [
        "# unused: data.synthetic (data.path is set: the file is read, nothing generated)",
        "# unused: data.column_names (data.header=true: the file's first line names them)"]
    hydra_only = command("experiments.train", "--cfg", "hydra", "data=movielens",
                         "data.path=r.csv", cwd=tmp_path)
    assert "# unused" not in hydra_only.stdout
    bad = command("experiments.train", "--cfg", "job", "model.embedding_dimm=8", cwd=tmp_path)
    assert bad.returncode != 0 and "embedding_dimm" in bad.stderr


def test_hydra_flag_we_cannot_serve_is_one_line(tmp_path: Path, capsys) -> None:
    from experiments import train

    assert train.main(["--experimental-rerun", str(tmp_path / "job.pickle")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --experimental-rerun is not supported: re-run a run's or a study's "
                   "saved config with --config PATH/config.yaml")


def test_multirun_gives_each_job_its_own_run_folder(tmp_path: Path) -> None:
    proc = command("experiments.train", "-m", *TINY_SYNTHETIC, *TINY_TRAIN, "train.epochs=1",
                   f"data.cache_dir={tmp_path / 'cache'}", "model.embedding_dim=8,16",
                   f"hydra.sweep.dir={tmp_path / 'multi'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dims = []
    for job in ("0", "1"):
        run_dir = tmp_path / "multi" / job
        assert json.loads((run_dir / "metrics.json").read_text())["epochs_run"] == 1
        assert (run_dir / ".hydra" / "overrides.yaml").is_file()
        dims.append(yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["embedding_dim"])
    assert dims == [8, 16]
    assert proc.stdout.count("run directory:") == 2 and "job 1: " in proc.stdout


def test_train_and_sweep_consoles_hold_no_tensorflow_noise(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train = command("experiments.train", *TINY_SYNTHETIC, *TINY_TRAIN,
                    f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}",
                    cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-2000:]
    console = train.stdout + train.stderr
    assert not NOISE.findall(console), NOISE.findall(console)
    epochs = re.findall(r"^epoch +(\d)/2  loss [\d.]+  val_top_100 [\d.]+  train [\d.]+ s",
                        train.stdout, re.MULTILINE)
    assert epochs == ["1", "2"]
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "config.yaml").is_file()
    # overrides.yaml holds the user's overrides, as typed, and nothing of our own.
    assert yaml.safe_load((run_dir / "overrides.yaml").read_text()) == [
        *TINY_SYNTHETIC, *TINY_TRAIN, f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={run_dir}"]

    study = tmp_path / "study"
    sweep = command("experiments.sweep", *TINY_SYNTHETIC, *TINY_TRAIN,
                    f"data.cache_dir={tmp_path / 'cache'}", f"search.dir={study}",
                    "search.n_trials=2", "search.n_workers=2", "search.enqueue_trials=[]",
                    cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    console = sweep.stdout + sweep.stderr
    assert not NOISE.findall(console), NOISE.findall(console)
    # One line per trial from the worker that ran it: done/total (the two workers may both
    # see 2/2 when they finish together) and an ETA.
    trial_lines = re.findall(r"^trial +\d+ complete .*\[(\d)/2\] \d+s eta \S+", sweep.stdout,
                             re.MULTILINE)
    assert len(trial_lines) == 2 and "2" in trial_lines
    assert (study / ".hydra" / "config.yaml").is_file()
    # --verbose brings TensorFlow's own logs back.
    loud = command("experiments.train", *TINY_SYNTHETIC, *TINY_TRAIN, "train.epochs=1",
                   f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'loud'}",
                   "--verbose", cwd=tmp_path)
    assert loud.returncode == 0 and NOISE.search(loud.stderr)


@pytest.mark.parametrize("command", ["report", "train", "benchmark"])
def test_help_piped_into_head_ends_quietly(command: str) -> None:
    """`... --help | head -1`: the reader leaves early; no BrokenPipeError traceback."""
    proc = subprocess.run(f"{sys.executable} -m experiments.{command} --help | head -1",
                          shell=True, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    assert proc.stdout.startswith(f"recsys-{command}") or "usage" in proc.stdout


def test_report_help_is_the_reports_own() -> None:
    from experiments import report

    proc = subprocess.run([sys.executable, "-m", "experiments.report", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "study=NAME" in proc.stdout and "index.html" in proc.stdout
    assert "recsys-sweep" not in proc.stdout and report.HELP in proc.stdout


def test_printing_flags_never_show_a_storage_password(tmp_path: Path) -> None:
    """--cfg job --resolve of an ${oc.env:...} storage, --cfg all and --info of a typed one:
    the password is *** in all of them (it was printed whole, up to three times)."""
    url = "postgresql+psycopg://u:s3cretpw@dbhost:5432/db"
    env_args = ("search.storage=${oc.env:RECSYS_TEST_URL}", "--cfg", "job", "--resolve")
    os.environ["RECSYS_TEST_URL"] = url
    try:
        runs = [command("experiments.sweep", *env_args, cwd=tmp_path),
                command("experiments.sweep", f"search.storage={url}", "--cfg", "all",
                        cwd=tmp_path),
                command("experiments.sweep", f"search.storage={url}", "--info", cwd=tmp_path)]
    finally:
        del os.environ["RECSYS_TEST_URL"]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
        assert "s3cretpw" not in proc.stdout + proc.stderr
    assert "storage: postgresql+psycopg://u:***@dbhost:5432/db" in runs[0].stdout


@pytest.mark.parametrize("password", ["x]y9", "x(y9", "x=y9", "x~y9", "x,y9", "x'y9"])
@pytest.mark.parametrize("flags", [[], ["--cfg", "job"], ["--info"], ["-m"], ["--help"]])
def test_an_unquoted_password_is_never_echoed(tmp_path: Path, password: str,
                                              flags: list[str]) -> None:
    """A password holding a character of Hydra's grammar: one line, exit 2, the password
    nowhere (Hydra's own lexer message and our quoting hint both showed it)."""
    url = f"postgresql+psycopg://recsys:{password}@127.0.0.1:1/adv"
    proc = command("experiments.sweep", f"search.storage={url}", *flags, cwd=tmp_path)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and password not in lines[0]


@pytest.mark.parametrize("flags", [["--info"], ["--help"], ["--cfg", "job"], ["-m"]])
def test_an_unquoted_tilde_beside_a_hydra_flag_is_the_quoting_hint(tmp_path: Path,
                                                                    flags: list[str]) -> None:
    proc = command("experiments.train", "data.cache_dir=~/x", *flags, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: cannot read the override 'data.cache_dir=~/x': Hydra's override grammar stops "
        "at '~'; quote the value, e.g. 'data.cache_dir=\"~/x\"' (the outer single quotes are "
        "for the shell)"], proc.stderr


def test_cfg_with_multirun_is_one_line(tmp_path: Path) -> None:
    proc = command("experiments.train", "-m", "model.embedding_dim=16,32", "--cfg", "job",
                   cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --cfg prints one composed config and runs nothing: leave out -m (--multirun), "
        "or run the multirun without --cfg"]


def test_multirun_flag_after_overrides_runs_each_job(tmp_path: Path) -> None:
    """`train a=1 -m b=16,0`: argparse read b=16,0 as "unrecognized" and printed its usage
    block; each job runs, the bad one fails with its one line."""
    proc = command("experiments.train", *TINY_SYNTHETIC, "train.epochs=1", "-m",
                   "model.embedding_dim=16,0", f"hydra.sweep.dir={tmp_path / 'm'}", cwd=tmp_path)
    assert "usage:" not in proc.stderr and "unrecognized arguments" not in proc.stderr
    assert "job 0:" in proc.stdout and "job 1:" in proc.stdout
    assert proc.returncode == 2 and "error: model.embedding_dim=0 is invalid" in proc.stderr
