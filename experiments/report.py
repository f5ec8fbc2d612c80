"""A study's report and best/, rebuilt from its storage:

    python -m experiments.report study=<name> [search.* overrides, e.g. search.storage=...]

Writes what the end of a sweep writes (`write_study_outputs`): report/ (index.html, the
table and every plot on one page; PNGs; summary.md; trials.csv), best/, and the TensorBoard
runs of the baselines in trials/).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import optuna
from omegaconf import DictConfig

from experiments.cli.app import Job, run_command
from experiments.cli.compose import job_config
from experiments.cli.console import pipe_safe
from experiments.sweeping.folder import BestFolder, StudyFolder, claim_folder, ensure_writable
from experiments.sweeping.search_config import SearchConfig
from recsys.errors import UserError


def set_up(cfg: DictConfig, overrides: list[str]) -> Job:
    search = SearchConfig.from_dict(job_config(cfg)["search"])
    from experiments.sweeping.study import mask_url, sqlite_file

    name = search.study_name
    missing = sqlite_file(search.storage)
    if missing is not None and not missing.is_file():  # report creates nothing
        folder = Path(search.dir).parent
        found = sorted(p.parent.name for p in folder.glob("*/study.db"))
        raise UserError(f"no study named {name!r}: {missing} does not exist; studies in "
                        f"{folder}: {', '.join(found) or 'none'} (or set search.storage)")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "[W …] no complete trials" x5
    storage = claim_folder(Path(search.dir), search)  # the sweep's own checks
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise UserError(f"no study named {name!r} in {mask_url(search.storage)}: available "
                        f"are {', '.join(names) or 'none'}") from None
    # The trials were ranked, pruned and early-stopped on the study's own metric, whatever
    # search.metric this command composes to.
    metric = study.user_attrs.get("metric") or search.metric
    report_dir = StudyFolder(Path(search.dir)).report
    ensure_writable(report_dir, "search.dir")  # Hydra writes report/.hydra/ first

    def job(run_dir: Path) -> int:
        from experiments.cli.console import quiet_tensorflow

        quiet_tensorflow()
        from experiments.sweeping.export import exported_choice
        from experiments.sweeping.outputs import tensorboard_line, write_study_outputs

        chosen, note = exported_choice(study)
        if chosen is None:
            note = ("no trial has completed: there is no best/ yet, and the plots of values "
                    "are empty; the table says how the trials ended")
        if note:
            print(f"note: {note}")
        try:
            outputs = write_study_outputs(study, Path(search.dir), metric, chosen)
        except OSError as exc:
            raise UserError(f"cannot write best/ and report/ into {search.dir!r}: "
                            f"{exc.strerror}; set search.dir to a writable study folder") from None
        best = BestFolder(outputs.best) if outputs.best else None
        if best:
            print(f"best: {best.root}  (config, metrics"
                  f"{', model' if best.model.exists() else ''})")
        if best and not best.model.exists():
            from experiments.cli.console import command

            print(f"note: {best.model} is missing: the best trial's vectors.npz is not in "
                  f"its folder (moved, deleted or on another machine). Train it again with "
                  f"{command('experiments.train')} --config {best.config}")
        from experiments.sweeping.study_table import study_table

        print(study_table(study, metric))
        print(f"report: {outputs.report}  (open it in a browser; summary.md, trials.csv and "
              "PNGs beside it)")
        print(tensorboard_line(Path(search.dir), outputs.tensorboard))
        return 0

    return job


HELP = """recsys-report (python -m experiments.report): rebuild a study's best/ and report/ from
its storage, and print its table.

Usage:
  python -m experiments.report study=NAME [search.* overrides]

  study=NAME            the study (search.study_name); its folder is outputs/sweeps/NAME
  search.dir=PATH       a study folder elsewhere (its study.db is the storage by default)
  search.storage=URL    a study in PostgreSQL (or another Optuna RDB URL)
  --verbose             full tracebacks

Trials are ranked on the metric the study was searched on (stored with the study).
Writes <study folder>/report/index.html (open it in a browser: the table and every plot on
one page), summary.md, trials.csv and PNGs, best/ (config.yaml, params.json, metrics.json,
model/), and prints the TensorBoard address that colours the best trials."""


@pipe_safe
def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args or "-h" in args:  # the report's own, not the sweep's
        print(HELP)
        return 0
    args = [f"search.study_name={a.split('=', 1)[1]}" if a.startswith("study=") else a
            for a in args]
    if not any(a.startswith("hydra.run.dir=") for a in args):  # .hydra/ beside the report
        args.append("hydra.run.dir=${search.dir}/report")
    return run_command(args, "sweep", set_up)


if __name__ == "__main__":
    sys.exit(main())
