"""The order-aware user tower (`model.user_tower=sequence`): SASRec's causal self-attention.

Kang & McAuley (2018): the user's latest items in time order (right-aligned rows of
`recsys.sequences`), each item's embedding (the item tower's own table, as SASRec shares input
and output embeddings) scaled by sqrt(dim) plus a learned position embedding, then `blocks` of
pre-norm causal multi-head attention and a position-wise feed-forward layer, each with dropout
and a residual. Column t's output sees columns <= t only, so one sequence trains on the next
item at every column; the user's vector is the output at the last column.

Positions count from the right edge of a `max_len` window: the latest item always has position
max_len - 1, however wide a batch's rows are.
"""

from __future__ import annotations

import math

import tensorflow as tf


class SequenceEncoder(tf.keras.layers.Layer):
    def __init__(self, item_table: tf.keras.layers.Embedding, dim: int, max_len: int,
                 blocks: int, heads: int, dropout: float, seed: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.item_table, self.dim, self.max_len = item_table, dim, max_len
        init = tf.keras.initializers.RandomUniform(-0.05, 0.05, seed=seed)
        self.positions = tf.keras.layers.Embedding(max_len, dim, embeddings_initializer=init,
                                                   name="positions")
        self.input_dropout = tf.keras.layers.Dropout(dropout, seed=seed)
        self.blocks = [_Block(dim, heads, dropout, seed + 10 * (i + 1), name=f"block_{i}")
                       for i in range(blocks)]
        self.final_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")

    def call(self, sequence: tf.Tensor, training: bool = False, last_only: bool = False,
             ) -> tf.Tensor:
        """[B, W] item index + 1 (0: padding) -> [B, W, dim] outputs, column t from items <= t
        (`last_only`: [B, 1, dim], the last column's)."""
        present = sequence > 0
        width = tf.shape(sequence)[1]
        x = self.item_table(tf.maximum(sequence - 1, 0)) * math.sqrt(self.dim)
        x += self.positions(tf.range(self.max_len - width, self.max_len))[None]
        x = self.input_dropout(x, training=training) * tf.cast(present, x.dtype)[..., None]
        keys = present[:, None, :]  # padding is never attended to (causality: use_causal_mask)
        for i, block in enumerate(self.blocks):
            x = block(x, keys, training=training, last_only=last_only and i == len(self.blocks) - 1)
        return self.final_norm(x)

    def last(self, sequence: tf.Tensor, training: bool = False) -> tf.Tensor:
        """[B, dim]: the output at the latest item (the last column). Its last block reads
        every column but computes the last one only: a third less work to serve a user."""
        return self(sequence, training=training, last_only=True)[:, -1, :]


class _Block(tf.keras.layers.Layer):
    """Pre-norm causal self-attention, then a position-wise feed-forward layer."""

    def __init__(self, dim: int, heads: int, dropout: float, seed: int, **kwargs) -> None:
        super().__init__(**kwargs)
        glorot = tf.keras.initializers.GlorotUniform
        self.attention_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.attention = tf.keras.layers.MultiHeadAttention(
            heads, key_dim=dim // heads, dropout=dropout, kernel_initializer=glorot(seed))
        self.feed_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.feed = [tf.keras.layers.Dense(dim, activation="relu", kernel_initializer=glorot(seed + 1)),
                     tf.keras.layers.Dense(dim, kernel_initializer=glorot(seed + 2))]
        self.dropout = tf.keras.layers.Dropout(dropout, seed=seed + 3)

    def call(self, x: tf.Tensor, keys: tf.Tensor, training: bool = False,
             last_only: bool = False) -> tf.Tensor:
        """`last_only`: the last column's output alone, [B, 1, dim] (it sees every column,
        so the causal mask is the padding mask)."""
        h = self.attention_norm(x)
        if last_only:
            x = x[:, -1:]
            attended = self.attention(h[:, -1:], h, attention_mask=keys, training=training)
        else:
            attended = self.attention(h, h, attention_mask=keys, use_causal_mask=True,
                                      training=training)
        x += self.dropout(attended, training=training)
        h = self.feed_norm(x)
        for layer in self.feed:
            h = layer(h)
        return x + self.dropout(h, training=training)
