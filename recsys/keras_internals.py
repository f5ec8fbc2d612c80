"""Every access to Keras optimizer internals, in one place: Keras's Adam keeps its moment
slots in private lists indexed by a private variable key, and lazy Adam (`recsys.optim`)
updates only the rows a batch holds, in those same slots. `tests/test_internals.py` pins this
against the installed tf-keras: a version that moves them fails there, loudly."""

from __future__ import annotations

import tensorflow as tf


def adam_moments(optimizer: tf.keras.optimizers.Adam,
                 variable: tf.Variable) -> tuple[tf.Variable, tf.Variable]:
    """Adam's first and second moment slots of `variable` (built by `optimizer.build`)."""
    index = optimizer._index_dict[optimizer._var_key(variable)]
    return optimizer._momentums[index], optimizer._velocities[index]
