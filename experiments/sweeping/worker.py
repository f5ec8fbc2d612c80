"""A worker process of a study with `search.n_workers > 1`:
`python -m experiments.sweeping.worker <the sweep's overrides>`, started by the main process.

It builds the same plan from the same command line (without the main process's checks, which
already passed) and runs trials until the study has its n_trials; exit 75 asks the main
process for a fresh worker (after `search.trials_per_process` trials)."""

from __future__ import annotations

import sys

from experiments.cli.console import quiet_tensorflow
from experiments.sweeping.plan import plan_from_argv
from experiments.sweeping.processes import stop_with_parent
from recsys.cache import HeldData
from recsys.errors import UserError


def main(argv: list[str]) -> int:
    stop_with_parent()
    try:
        plan = plan_from_argv(argv, check=False)
        # The main process filled the cache; the rungs follow from the data, as there.
        data = HeldData()  # read once here, for the rungs and every trial of this process
        plan = plan.with_rungs(data.get(plan.base.data).stats["train_pool"])
        from experiments.sweeping.study import open_storage

        storage = open_storage(plan.search)
    except UserError as exc:  # the main process checked the same: e.g. the storage went away
        print(f"error: {exc}", file=sys.stderr)
        return 2
    quiet_tensorflow()
    from experiments.sweeping.run import run_worker

    return run_worker(storage, plan, data)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
