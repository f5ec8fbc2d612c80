"""Runnable entry points: compose a Hydra config, call the `recsys` library, report."""

import recsys  # noqa: F401  (first: selects Keras 2 before anything imports TensorFlow)
