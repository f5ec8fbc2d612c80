"""Lazy Adam: Adam whose sparse (embedding) updates touch only the rows in the batch.

Keras's Adam decays the moment estimates of *every* row of an embedding table at every step,
and rewrites every weight: on a 3.3M-user table (the whole Amazon Electronics file) a
1024-pair step takes ~13x Adagrad's (`python -m experiments.benchmark --mode steps`). The lazy
variant (as in TensorFlow Addons' LazyAdam) updates a row's moments and
weights only when a batch holds it; dense variables (tower layers) get plain Adam.
"""

from __future__ import annotations

import tensorflow as tf

from recsys.config import AdagradConfig, OptimizerConfig, SGDConfig
from recsys.keras_internals import adam_moments


class LazyAdam(tf.keras.optimizers.Adam):
    def update_step(self, gradient: tf.Tensor | tf.IndexedSlices, variable: tf.Variable) -> None:
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        beta_2_power = tf.pow(beta_2, step)
        alpha = (tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - beta_2_power)
                 / (1 - tf.pow(beta_1, step)))
        epsilon = self.epsilon * tf.sqrt(1 - beta_2_power) \
            if getattr(self, "adaptive_epsilon", False) else self.epsilon
        m, v = adam_moments(self, variable)
        # A row held several times in the batch: its gradients add up, as in dense Adam.
        rows, position = tf.unique(gradient.indices)
        grad = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * grad
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(grad)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + epsilon), rows))
        return None


def make_optimizer(cfg: OptimizerConfig, table_rows: int = 0) -> tf.keras.optimizers.Optimizer:
    """`table_rows`: users + items of the embedding tables (decides `lazy: auto`)."""
    if isinstance(cfg, AdagradConfig):
        return tf.keras.optimizers.Adagrad(cfg.learning_rate,
                                           initial_accumulator_value=cfg.initial_accumulator_value)
    if isinstance(cfg, SGDConfig):
        return tf.keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum)
    if cfg.use_lazy(table_rows):
        return LazyAdam(cfg.learning_rate)
    return tf.keras.optimizers.Adam(cfg.learning_rate)
