"""Runnable entry points: compose a Hydra config, call the `recsys` library, report."""

import os
import sys

# Before anything imports TensorFlow: its C++ start-up logs (a CUDA probe failing on every CPU
# machine, CPU feature notes) are noise to a user; `--verbose` keeps them.
if "--verbose" not in sys.argv and os.environ.get("RECSYS_VERBOSE") != "1":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import recsys  # noqa: E402,F401  (selects Keras 2 before anything imports TensorFlow)
