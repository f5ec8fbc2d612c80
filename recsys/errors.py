"""The library's two exceptions: a user mistake (entry points print its message as one line,
no traceback) and a training run that diverged (a trial fails with it as its reason)."""


class UserError(Exception):
    """Bad configuration or input data; the message names the bad value and what is valid."""


class TrainingDiverged(Exception):
    """The training loss became NaN, infinite or far above its start (e.g. a learning rate far
    too high); see `recsys.training.DIVERGED_FACTOR`."""
