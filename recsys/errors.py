"""The one exception type for user mistakes: entry points print its message as one line."""


class UserError(Exception):
    """Bad configuration or input data; the message names the bad value and what is valid."""


class TrainingDiverged(Exception):
    """The training loss became NaN or infinite (e.g. a learning rate far too high)."""
