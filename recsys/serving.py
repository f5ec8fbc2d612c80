"""A self-contained SavedModel that recommends: raw user id strings in, top-k item ids out.

With ids as the only features, each tower is a function of the id alone, so a trained model is
exactly two matrices: one vector per known user and one per catalog item. `save_vectors` writes
them (plus the vocabularies, training popularity and the items each user rated) beside a run;
`export_saved_model` wraps them in a `tf.Module` whose `recommend(user_ids, k, exclude_seen)`
scores the whole catalog (what the notebook does with `BruteForce`), with `k` chosen at call
time up to `max_k`. Users the model has never seen get the most popular training items, and
the output's `known_user` says so. Loading needs only TensorFlow: `tf.saved_model.load(path)`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from recsys.files import atomic_path
from recsys.prepare import TrialData
from recsys.sequence_tower import SequenceEncoder

VECTORS_FILE = "vectors.npz"


def save_vectors(user_vectors: Callable[[np.ndarray], tf.Tensor], model: tf.keras.Model,
                 data: TrialData, path: Path, dtype: str = "float32") -> None:
    """Write every user's and item's tower output and what the SavedModel needs beside them
    (`dtype` float16 halves the file; the SavedModel scores in float32 either way).
    `user_vectors(users)`: the user tower's output (with each user's training history)."""
    users = np.asarray(user_vectors(np.arange(data.n_users))).astype(dtype)
    items = model.item_embeddings().numpy().astype(dtype)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **pack_strings("user_ids", data.user_vocab),
                 **pack_strings("item_ids", data.item_vocab), user_vectors=users,
                 item_vectors=items, item_counts=data.item_counts,
                 train_user=data.train_user, train_item=data.train_item,
                 **history_tower(model))


def pack_strings(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Ids as one UTF-8 blob plus offsets: a fixed-width string array pads every id to the
    longest (one 100 kB junk id made a 16 kB file 24 MB)."""
    encoded = [str(v).encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return {f"{name}_utf8": np.frombuffer(b"".join(encoded), np.uint8),
            f"{name}_offsets": offsets}


def load_vectors(path: Path) -> dict[str, np.ndarray]:
    """vectors.npz as arrays, with `user_ids` and `item_ids` as arrays of str."""
    with np.load(path, allow_pickle=False) as f:
        out = {name: f[name] for name in f.files}
    for name in ("user_ids", "item_ids"):
        if f"{name}_utf8" in out:
            text, offsets = out.pop(f"{name}_utf8").tobytes(), out.pop(f"{name}_offsets")
            out[name] = np.array([text[a:b].decode("utf-8")
                                  for a, b in zip(offsets[:-1], offsets[1:], strict=True)],
                                 dtype=object)
    return out


def history_tower(model: tf.keras.Model) -> dict[str, np.ndarray]:
    """The user tower's own weights, so that the SavedModel can build the vector of a user it
    never saw from items given at call time: the item-history table (row 0: padding) of a
    history tower, or a sequence tower's encoder weights and shape; then the user-side dense
    layers, and whether vectors are normalized."""
    if getattr(model, "sequence_encoder", None) is not None:
        cfg = model.cfg
        out = {"sequence_shape": np.array([cfg.embedding_dim, cfg.sequence_max_len,
                                           cfg.sequence_blocks, cfg.sequence_heads])}
        for i, weight in enumerate(model.sequence_encoder.get_weights()):
            out[f"sequence_weight_{i}"] = weight.astype(np.float32)
    elif getattr(model, "history_items", None) is not None:
        out = {"history_vectors": model.history_items.embeddings.numpy().astype(np.float32)}
    else:
        return {}
    out["normalize"] = np.array(model.cfg.normalize)
    for i, layer in enumerate(model.user_layers.layers):
        kernel, bias = layer.get_weights()
        out[f"user_layer_{i}_kernel"], out[f"user_layer_{i}_bias"] = kernel, bias
    return out


def sequence_encoder(vectors: dict[str, np.ndarray]) -> SequenceEncoder:
    """The trained sequence tower rebuilt from vectors.npz (dropout off: serving)."""
    dim, max_len, blocks, heads = (int(v) for v in vectors["sequence_shape"])
    n_items = len(vectors["item_ids"])
    table = tf.keras.layers.Embedding(n_items, dim, name="item_ids")
    encoder = SequenceEncoder(table, dim, max_len, blocks, heads, 0.0, 0, name="sequence_encoder")
    encoder(tf.ones([1, max_len], tf.int32))  # build, then load the trained weights
    count = sum(k.startswith("sequence_weight_") for k in vectors)
    encoder.set_weights([vectors[f"sequence_weight_{i}"] for i in range(count)])
    return encoder


class Recommender(tf.Module):
    def __init__(self, vectors: dict[str, np.ndarray], max_k: int) -> None:
        super().__init__()
        user_ids = vectors["user_ids"][1:]  # index 0 is the unknown-user slot, never a key
        self.user_index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(user_ids.astype(object), tf.string),
                tf.range(1, len(user_ids) + 1, dtype=tf.int64)), default_value=-1)
        self.user_vectors = tf.Variable(vectors["user_vectors"].astype("float32"), trainable=False)
        self.item_vectors = tf.Variable(vectors["item_vectors"].astype("float32"), trainable=False)
        self.item_ids = tf.Variable(vectors["item_ids"].astype(object), trainable=False,
                                    dtype=tf.string)
        counts = vectors["item_counts"]
        order = np.lexsort((np.arange(len(counts)), -counts))[:max_k]
        self.popular = tf.Variable(order.astype(np.int32), trainable=False)
        self.popular_counts = tf.Variable(counts[order].astype(np.float32), trainable=False)
        self.seen = tf.RaggedTensor.from_value_rowids(
            vectors["train_item"][np.argsort(vectors["train_user"], kind="stable")].astype(np.int32),
            np.sort(vectors["train_user"]).astype(np.int64), nrows=len(vectors["user_ids"]))
        self.max_k = tf.Variable(max_k, trainable=False)
        self.item_index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vectors["item_ids"].astype(object), tf.string),
                tf.range(len(vectors["item_ids"]), dtype=tf.int64)), default_value=-1)
        self.has_sequence = "sequence_shape" in vectors
        self.has_history = "history_vectors" in vectors or self.has_sequence
        if self.has_sequence:
            self.encoder = sequence_encoder(vectors)
            self.sequence_len = int(vectors["sequence_shape"][1])
        elif self.has_history:
            self.history_vectors = tf.Variable(vectors["history_vectors"], trainable=False)
        if self.has_history:
            self.user_layers = [(tf.Variable(vectors[f"user_layer_{i}_kernel"], trainable=False),
                                 tf.Variable(vectors[f"user_layer_{i}_bias"], trainable=False))
                                for i in range(sum(k.endswith("_kernel") for k in vectors))]
            self.normalize = bool(vectors["normalize"])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int32)])
    def recommend_from_history(self, item_ids: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        """One user the model never saw, from the items they rated (raw ids, oldest first;
        unknown ones are ignored): the history tower's vector (mean of the items' history
        embeddings; a sequence tower: its output at the latest of the last sequence_max_len
        items), then the user-side layers; the given items left out. Without a history or
        sequence tower, or without one known item, the popularity list (`from_history` says
        which)."""
        tf.debugging.assert_greater(k, 0, message="k must be >= 1")
        tf.debugging.assert_less_equal(k, self.max_k, message="k must be <= max_k")
        index = self.item_index.lookup(item_ids)
        given = tf.cast(tf.boolean_mask(index, index >= 0), tf.int32)
        use = tf.logical_and(tf.constant(self.has_history), tf.size(given) > 0)
        if self.has_history:
            if self.has_sequence:  # right-aligned: the latest item in the last column
                latest = given[-self.sequence_len:] + 1
                row = tf.pad(latest, [[self.sequence_len - tf.size(latest), 0]])
                x = self.encoder.last(row[None])
            else:
                x = tf.reduce_mean(tf.gather(self.history_vectors, given + 1), axis=0,
                                   keepdims=True)
            for i, (kernel, bias) in enumerate(self.user_layers):
                x = tf.matmul(x, kernel) + bias
                if i < len(self.user_layers) - 1:
                    x = tf.nn.relu(x)
            if self.normalize:
                x = tf.math.l2_normalize(x, axis=-1)
            scores = tf.matmul(x, self.item_vectors, transpose_b=True)[0]
            scores = tf.tensor_scatter_nd_update(
                scores, given[:, None], tf.fill(tf.shape(given), tf.constant(-np.inf)))
        else:
            scores = tf.zeros([tf.shape(self.item_vectors)[0]])
        top_scores, top_items = tf.math.top_k(scores, k=k)
        return {"item_ids": tf.gather(self.item_ids, tf.where(use, top_items, self.popular[:k])),
                "scores": tf.where(use, top_scores, self.popular_counts[:k]),
                "from_history": use}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int32),
                                  tf.TensorSpec([], tf.bool)])
    def recommend(self, user_ids: tf.Tensor, k: tf.Tensor, exclude_seen: tf.Tensor
                  ) -> dict[str, tf.Tensor]:
        tf.debugging.assert_greater(k, 0, message="k must be >= 1")
        tf.debugging.assert_less_equal(k, self.max_k, message="k must be <= max_k")
        index = self.user_index.lookup(user_ids)
        known = index >= 0
        queries = tf.gather(self.user_vectors, tf.maximum(index, 0))
        scores = tf.matmul(queries, self.item_vectors, transpose_b=True)
        if exclude_seen:
            seen = tf.gather(self.seen, tf.maximum(index, 0))
            rows = tf.cast(seen.value_rowids(), tf.int32)
            where = tf.stack([rows, seen.values], axis=1)
            scores = tf.tensor_scatter_nd_update(
                scores, where, tf.fill([tf.shape(where)[0]], tf.constant(-np.inf, tf.float32)))
        top_scores, top_items = tf.math.top_k(scores, k=k)
        batch = tf.shape(user_ids)[0]
        popular = tf.tile(self.popular[None, :k], [batch, 1])
        popular_scores = tf.tile(self.popular_counts[None, :k], [batch, 1])
        items = tf.where(known[:, None], top_items, popular)
        return {
            "item_ids": tf.gather(self.item_ids, items),
            "scores": tf.where(known[:, None], top_scores, popular_scores),
            "known_user": known,
        }


def export_saved_model(vectors_path: Path, out_dir: Path, max_k: int = 100) -> Path:
    """Write a SavedModel to out_dir; `max_k` is capped at the catalog size."""
    vectors = load_vectors(vectors_path)
    max_k = int(min(max_k, len(vectors["item_ids"])))
    module = Recommender(vectors, max_k)
    tf.saved_model.save(module, str(out_dir),
                        signatures={"serving_default": module.recommend,
                                    "recommend_from_history": module.recommend_from_history})
    return out_dir
