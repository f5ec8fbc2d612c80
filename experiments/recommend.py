"""Top-k items for a user from an exported model.

    python -m experiments.recommend outputs/sweeps/default/best/model AJ8K2ISHMBU6ZW --k 10

Needs only TensorFlow to load the model (a plain SavedModel). A user the model has not seen
(including an empty id) gets the most popular training items, and the output says so.
Someone new: `--history ITEM,...` (the items they rated) without a user id. Items the user
rated in training are left out (`--include-seen` keeps them); `--titles movies.csv` prints
titles beside the ids.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from experiments.cli.app import EXIT_USER_ERROR
from experiments.cli.console import pipe_safe, printable, quiet_tensorflow


@pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.recommend",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="a SavedModel folder, e.g. <study>/best/model")
    parser.add_argument("user_id", nargs="?", default=None,
                        help="the user's id as in the ratings file (leave it out with --history "
                             "for someone new)")
    parser.add_argument("--k", type=int, default=10, help="how many items (default 10)")
    seen = parser.add_mutually_exclusive_group()
    seen.add_argument("--include-seen", dest="exclude_seen", action="store_false",
                      help="keep the items the user rated in training (left out by default: "
                           "a shop does not recommend what was just bought)")
    seen.add_argument("--exclude-seen", dest="exclude_seen", action="store_true",
                      help=argparse.SUPPRESS)  # the default; accepted as before
    parser.set_defaults(exclude_seen=True)
    parser.add_argument("--titles", type=Path, metavar="CSV",
                        help="a CSV of item id, title (more columns are ignored; a header row "
                             "is fine), e.g. MovieLens' movies.csv: titles beside the ids")
    parser.add_argument("--history", metavar="ITEM,...",
                        help="the items this user rated (comma-separated ids, oldest first): a "
                             "model with a history or sequence tower (model.user_tower=history "
                             "or sequence) builds the user's vector from them, for users it "
                             "never saw; they are left out of the list")
    args = parser.parse_args(argv)
    if not (args.model_dir / "saved_model.pb").is_file():
        print(f"error: {str(args.model_dir)!r} is not an exported model folder (no "
              "saved_model.pb); expected e.g. outputs/sweeps/default/best/model", file=sys.stderr)
        return EXIT_USER_ERROR

    quiet_tensorflow()  # after argument checks: its import is slow and, unquieted, noisy
    import tensorflow as tf

    try:
        model = tf.saved_model.load(str(args.model_dir))
        max_k = int(model.max_k.numpy())
    except (OSError, ValueError, AttributeError, IndexError, KeyError,
            tf.errors.OpError) as exc:  # a truncated or damaged copy
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        print(f"error: {str(args.model_dir)!r} is not a readable exported model ({reason}); "
              "export it again with python -m experiments.report or re-run the study",
              file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        titles = read_titles(args.titles) if args.titles else {}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"error: --titles {str(args.titles)!r} cannot be read ({exc}); expected a CSV "
              "of item id, title such as MovieLens' movies.csv", file=sys.stderr)
        return EXIT_USER_ERROR
    if not 1 <= args.k <= max_k:
        print(f"error: --k {args.k} is invalid: expected 1 to {max_k} (this model's max_k)",
              file=sys.stderr)
        return EXIT_USER_ERROR
    if args.history is not None:
        return from_history(model, args, titles)
    if args.user_id is None:
        print("error: give a user id, or --history ITEM,... (the items someone new rated)",
              file=sys.stderr)
        return EXIT_USER_ERROR
    out = model.recommend(tf.constant([args.user_id]), tf.constant(args.k),
                          tf.constant(args.exclude_seen))
    if not bool(out["known_user"].numpy()[0]):
        print(f"user {args.user_id!r} is not in the model's training data: showing the "
              f"{args.k} most popular items (score = training ratings)")
    else:
        print(f"top {args.k} items for user {args.user_id!r}"
              f"{' (items rated in training left out)' if args.exclude_seen else ''}:")
    print_items(out["item_ids"].numpy()[0], out["scores"].numpy()[0], args.k,
                counts=not bool(out["known_user"].numpy()[0]), titles=titles)
    return 0


def from_history(model, args: argparse.Namespace,  # noqa: ANN001 (a SavedModel)
                 titles: dict[str, str]) -> int:
    """Recommend for someone new from the items they rated: each given id once, whitespace
    around ids ignored, unknown ids named and left out."""
    import tensorflow as tf

    if args.user_id:
        known = model.recommend(tf.constant([args.user_id]), tf.constant(1), tf.constant(False))
        if bool(known["known_user"].numpy()[0]):
            print(f"error: user {args.user_id!r} is in the model's training data: --history is "
                  "for someone new (leave the user id out), or drop --history to recommend "
                  "from their own training items", file=sys.stderr)
            return EXIT_USER_ERROR
    # Each id once, at its latest place (a sequence tower reads them oldest first)
    ids = [i.strip() for i in args.history.split(",") if i.strip()]
    given = list(reversed(dict.fromkeys(reversed(ids))))
    catalog = {i.decode() for i in model.item_ids.numpy()}
    items = [i for i in given if i in catalog]
    if unknown := [i for i in given if i not in catalog]:
        print(f"note: {len(unknown)} of the {len(given)} given item(s) are not in the model's "
              f"catalog and are left out: {', '.join(unknown[:10])}"
              f"{' ...' if len(unknown) > 10 else ''}")
    out = model.recommend_from_history(tf.constant(items, tf.string), tf.constant(args.k))
    who = f"user {args.user_id!r}" if args.user_id else "someone new"
    if bool(out["from_history"].numpy()):
        print(f"top {args.k} items for {who} from the {len(items)} known given item(s) (those "
              "left out):")
        print_items(out["item_ids"].numpy(), out["scores"].numpy(), args.k, titles=titles)
    else:
        print(f"no vector from --history (the model has no history or sequence tower, or none of the "
              f"{len(given)} given item(s) is in its catalog): showing the {args.k} most popular "
              "items (score = training ratings)")
        print_items(out["item_ids"].numpy(), out["scores"].numpy(), args.k, counts=True,
                    titles=titles)
    return 0


def read_titles(path: Path) -> dict[str, str]:
    """Item id -> title from a CSV's first two columns (a header row, or any row whose id is
    not in the catalog, simply never matches)."""
    with path.open(newline="", encoding="utf-8") as f:
        return {row[0].strip(): row[1].strip() for row in csv.reader(f) if len(row) >= 2}


def print_items(item_ids, scores, k: int, counts: bool = False,  # noqa: ANN001
                titles: dict[str, str] | None = None) -> None:
    """Ranked items; an item scored -inf was left out (seen), so the list stops before it.
    `counts`: the scores are training ratings (popularity), printed as whole numbers."""
    shown = 0
    for rank, (item, score) in enumerate(zip(item_ids, scores, strict=True), start=1):
        if score == float("-inf"):
            break
        title = (titles or {}).get(item.decode())
        print(f"{rank:>4}  {printable(item.decode()):<16} " + (
            f"{score:>10.0f} ratings" if counts else f"{score:10.4f}") +
            (f"  {printable(title)}" if title else ""))
        shown += 1
    if shown < k:
        print(f"only {shown} item(s): the rest of the catalog was left out")


if __name__ == "__main__":
    sys.exit(main())
