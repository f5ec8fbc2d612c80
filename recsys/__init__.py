"""recsys: the library behind recsys-sweep (no Hydra, no Optuna: plain configs in, results out).

Importing this package is the one place that selects Keras 2. TFRS 0.7.x raises ImportError
under Keras 3, and TensorFlow decides which Keras `tf.keras` is the first time it is imported,
so `TF_USE_LEGACY_KERAS=1` must be in the environment *before* any `import tensorflow`. Every
entry point (`experiments.*`) and the test suite import `recsys` first, so they all pass here.
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
# Quieten TensorFlow's C++ INFO/WARNING chatter (oneDNN notices, CPU feature lines).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if "tensorflow" in sys.modules:  # pragma: no cover - guards a mistake in a new entry point
    _keras_module = sys.modules["tensorflow"].keras.__name__
    if not _keras_module.startswith("tf_keras"):
        raise ImportError(
            f"tensorflow was imported before recsys, so tf.keras is {_keras_module} (Keras 3); "
            "import recsys first (it sets TF_USE_LEGACY_KERAS=1)"
        )

__version__ = "0.1.0"
