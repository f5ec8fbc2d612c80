"""Every benchmark of the harness (speed, memory, search quality, scale-out), side by side in one
invocation; each mode prints a table.

    python -m experiments.benchmark                  # trial: notebook (a), (b) vs ours (c)
    python -m experiments.benchmark --mode load      # 7.8M-row load + prepare vs the notebook's
    python -m experiments.benchmark --mode scale [--rows N]
                                                     # one full-size trial: epoch, eval, memory, disk
    python -m experiments.benchmark --mode steps     # ms per step by optimizer on full-size tables
    python -m experiments.benchmark --mode fidelity [--rows N]
                                                     # data.sample_fraction as a cheap rung (2M rows)
    python -m experiments.benchmark --mode fidelity-study [--rows N] [--trials N]
                                                     # the default study with and without rungs
    python -m experiments.benchmark --mode pruning   # default study: no pruner vs pruners
    python -m experiments.benchmark --mode search [--movielens PATH] [--amazon PATH]
                                                     # popularity, notebook, fixed recipe, study
    python -m experiments.benchmark --mode knobs [--movielens PATH] [--amazon PATH]
                                                     # one change at a time from the fixed recipe
    python -m experiments.benchmark --mode sequential --amazon PATH
                                                     # the literature's protocol: towers, baselines
    python -m experiments.benchmark --mode baselines [--movielens PATH] [--amazon PATH]
                                                     # item-kNN + EASE: seconds, old vs new path
    OPTUNA_STORAGE=postgresql+psycopg://... python -m experiments.benchmark --mode soak
                                                     # 2 commands x 2 workers, kills, SIGINT
    python -m experiments.benchmark --mode all [hydra overrides for the data/model/train]

Trial mode runs each variant in its own process (peak memory is per process) on the same data
and hyperparameters, by default the synthetic generator at the notebook's size (~180k train /
20k test pairs, 4.6k items, emb 32, Adagrad 0.1, batch 8192, 10 epochs):
  (a) the notebook as written: StringLookup towers, FactorizedTopK on every training batch,
      model.fit + model.evaluate;
  (b) the same with the TFRS maintainers' advice, compute_metrics=not training;
  (c) our training run (recsys.training.run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from experiments.cli.console import pipe_safe
from recsys.metrics import top

if TYPE_CHECKING:
    from experiments.benchmarks.search import DataSet


@pipe_safe
def main(argv: list[str] | None = None) -> int:
    args, overrides = arguments().parse_known_args(argv)
    if problem := check_arguments(args):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    storage = os.environ.get("OPTUNA_STORAGE", "")
    if args.mode == "soak" and not storage.startswith(("postgresql", "mysql")):
        print("error: --mode soak needs OPTUNA_STORAGE set to a PostgreSQL (or MySQL) URL, "
              "e.g. postgresql+psycopg://user:password@host:5432/db", file=sys.stderr)
        return 2
    from experiments.cli.console import quiet_tensorflow

    quiet_tensorflow()
    print(f"machine: {os.cpu_count()} cores, {platform_line()}", flush=True)
    for mode, table in TABLES.items():
        if args.mode == mode or (args.mode == "all" and mode in IN_ALL):
            print(table(args, overrides), flush=True)
    return 0


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmark",
                                     description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--mode", choices=(*TABLES, "all"), default="trial",
                        help="which benchmark: trial (notebook vs ours, one trial), load, "
                             "scale (the whole Amazon file's shape), steps, fidelity, "
                             "fidelity-study, pruning, search (the default study beside "
                             "baselines on several data sets), knobs (one change at a time), "
                             "baselines (item-kNN and EASE, old and new path), sequential (the "
                             "literature's protocol), soak (memory over many trials), all")
    parser.add_argument("--rows", type=int, default=None,
                        help="load and scale modes: rows of the generated Amazon-shaped file "
                             "(7.8M; fidelity modes: 2M)")
    parser.add_argument("--trials", type=int, default=None,
                        help="pruning mode: trials per study (20); search mode: search.n_trials "
                             "(default: the default study's)")
    parser.add_argument("--movielens", action="append", default=[], metavar="PATH",
                        help="search mode: a MovieLens ratings.csv (header userId,movieId,...)")
    parser.add_argument("--amazon", action="append", default=[], metavar="PATH",
                        help="search mode: an Amazon-layout ratings CSV (no header)")
    parser.add_argument("--dataset", action="append", default=[], metavar="'LABEL: OVERRIDES'",
                        help="search mode: any data set as Hydra overrides, e.g. "
                             "'ml-100k: data=movielens_100k data.path=/data/u.data'")
    parser.add_argument("--metric", default=top(100).name,
                        help="search mode: the study's search.metric (and every run's "
                             "train.monitor), e.g. val_ndcg_10")
    parser.add_argument("--split", default=None,
                        help="search mode: data.split for every run (random, the default; "
                             "temporal, leave_one_out, user_temporal)")
    parser.add_argument("--pruners", default=None,
                        help="pruning mode: comma-separated subset of none, default, "
                             "'median no warm-up', 'median warm-up 2', hyperband (the first "
                             "is the reference for the epoch share)")
    parser.add_argument("--variants", default=None,
                        help="knobs mode: comma-separated subset of the variant names "
                             "(';'-separated where a name holds a comma)")
    parser.add_argument("--no-embedded", action="store_true",
                        help="search, pruning and knobs modes: leave out the embedded set")
    parser.add_argument("--generated-rows", type=int, default=200_000,
                        help="search mode: rows of the Amazon-format synthetic file the "
                             "benchmark writes (0: leave it out)")
    parser.add_argument("--memory-trials", type=int, default=100,
                        help="soak mode: trials of the long-lived worker memory check (0: skip)")
    return parser


def check_arguments(args: argparse.Namespace) -> str:
    """The one line naming a bad flag and what is valid ("" when all are good): before any
    benchmark starts, not as a traceback (or a silent exit 0) minutes in."""
    for flag in ("rows", "trials"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            return f"--{flag} {value} is invalid: expected a positive integer"
    for flag in ("movielens", "amazon"):
        for path in getattr(args, flag):
            if not Path(path).expanduser().is_file():
                return f"--{flag} {path!r} is not a file: expected a ratings file"
    for spec in args.dataset:
        label, colon, overrides = spec.partition(":")
        if not colon or not label.strip() or not overrides.strip():
            return (f"--dataset {spec!r} is invalid: expected 'LABEL: OVERRIDES', e.g. "
                    "'ml-100k: data=movielens_100k data.path=/data/u.data'")
    from recsys.config import SPLIT_STRATEGIES
    from recsys.metrics import selectable

    if args.split is not None and args.split not in SPLIT_STRATEGIES:
        return f"--split {args.split!r} is invalid: expected one of {', '.join(SPLIT_STRATEGIES)}"

    metrics = selectable((1, 5, 10, 50, 100))
    if args.metric not in metrics:
        return f"--metric {args.metric!r} is invalid: expected one of {', '.join(metrics)}"
    towers = args.mode == "sequential"  # its --variants are user towers
    for flag, module, table in (("pruners", "pruning", "PRUNERS"),
                                ("variants", *(("sequential", "TOWERS") if towers
                                               else ("knobs", "VARIANTS")))):
        chosen = getattr(args, flag)
        if chosen:
            known = getattr(__import__(f"experiments.benchmarks.{module}", fromlist=[table]),
                            table)
            unknown = [n for n in names(chosen) or [] if n not in known]
            if unknown:
                return (f"--{flag} {', '.join(unknown)} is not known: expected a "
                        f"comma-separated subset of {', '.join(known)}")
    return ""


def names(chosen: str | None) -> list[str] | None:
    """A --pruners / --variants list: ';'-separated where a name holds a comma (", ")."""
    if not chosen:
        return None
    return [n.strip() for n in chosen.split(";" if ";" in chosen or ", " in chosen else ",")
            if n.strip()]


# One function per mode: (parsed flags, Hydra overrides) -> the printed table. Each imports
# its module only when its mode runs (TensorFlow and Optuna are slow to import).
Args = argparse.Namespace


def trial(args: Args, overrides: list[str]) -> str:
    from experiments.benchmarks.trial import trial_table

    return trial_table(overrides)


def load(args: Args, overrides: list[str]) -> str:
    from experiments.benchmarks.load import load_table

    return load_table(args.rows or 7_800_000)


def scale(args: Args, overrides: list[str]) -> str:
    from experiments.benchmarks.scale import scale_table

    return scale_table(args.rows or 7_800_000, bench_dir(), overrides)


def steps(args: Args, overrides: list[str]) -> str:
    from experiments.benchmarks.scale import step_table

    return step_table()


def fidelity(args: Args, overrides: list[str]) -> str:  # ~30 min on 2 cores at 2M rows
    from experiments.benchmarks.fraction_rungs import fidelity_table

    return fidelity_table(args.rows or 2_000_000, bench_dir(), overrides)


def fidelity_study(args: Args, overrides: list[str]) -> str:  # ~45 min at 2M rows
    from experiments.benchmarks.fraction_rungs import fidelity_study_table

    folder = Path(tempfile.mkdtemp(prefix="fidelity-study.", dir=bench_dir()))
    return fidelity_study_table(args.rows or 2_000_000, folder, args.trials or 8, overrides)


def pruning(args: Args, overrides: list[str]) -> str:
    from experiments.benchmarks.pruning import pruning_table

    folder = Path(tempfile.mkdtemp(prefix="pruning.", dir=bench_dir()))
    return pruning_table(data_sets(args), args.trials or 20, overrides, folder,
                         names(args.pruners))


def search(args: Args, overrides: list[str]) -> str:
    from experiments.benchmarks.search import search_table

    folder = Path(tempfile.mkdtemp(prefix="search.", dir=bench_dir()))
    split = [f"data.split={args.split}"] if args.split else []
    return search_table(data_sets(args), [*split, *overrides], args.trials, folder, args.metric)


def baselines(args: Args, overrides: list[str]) -> str:
    from experiments.benchmarks.baselines import baselines_table

    return baselines_table(data_sets(args), overrides)


def knobs(args: Args, overrides: list[str]) -> str:
    from experiments.benchmarks.knobs import knobs_table

    return knobs_table(data_sets(args), overrides,
                       names(args.variants))


def sequential(args: Args, overrides: list[str]) -> str:
    from experiments.benchmarks.sequential import sequential_table

    return sequential_table(data_sets(args), overrides, names(args.variants))


def soak(args: Args, overrides: list[str]) -> str:  # needs a PostgreSQL server
    from experiments.benchmarks.soak import soak_table

    folder = Path(tempfile.mkdtemp(prefix="soak.", dir=bench_dir())).resolve()
    return soak_table(os.environ["OPTUNA_STORAGE"], folder, n_trials=args.trials or 40,
                      memory_trials=args.memory_trials)


TABLES = {"trial": trial, "load": load, "scale": scale, "steps": steps, "fidelity": fidelity,
          "fidelity-study": fidelity_study, "pruning": pruning, "search": search,
          "knobs": knobs, "soak": soak, "baselines": baselines, "sequential": sequential}
IN_ALL = ("trial", "load", "scale", "pruning", "search", "knobs")  # the others take long


def data_sets(args: Args) -> list[DataSet]:
    """The search, pruning and knobs modes' data sets (a generated file is written once)."""
    from experiments.benchmarks.search import default_data_sets

    return default_data_sets(args.generated_rows, args.movielens, args.amazon, args.dataset,
                             bench_dir(), not args.no_embedded)


def bench_dir() -> Path:
    path = Path("outputs") / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def platform_line() -> str:
    import platform

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{platform.processor() or platform.machine()}, TensorFlow {tf.__version__}, " \
           f"{'GPU: ' + str(len(gpus)) if gpus else 'no GPU'}"


if __name__ == "__main__":
    sys.exit(main())
