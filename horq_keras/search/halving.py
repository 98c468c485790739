"""Successive halving on epochs (Jamieson & Talwalkar, AISTATS 2016; the rung schedule of
Li et al.'s Hyperband, JMLR 2018), kept for the frontier.

Every candidate is trained for ``min_epochs``; after each rung the best ``1/eta`` by
accuracy go on to a rung of ``eta`` times the epochs, until ``max_epochs``. A search for a
frontier must not drop a cheap candidate because a costly one is more accurate, so a rung
also keeps every candidate on that rung's accuracy–cost front (:mod:`.pareto`): what is
dropped is dominated *and* outside the top ``1/eta``.

Each rung trains its candidates from scratch for its number of epochs (a learning-rate
schedule over the whole run, such as the recipes' cosine decay, depends on the number of
epochs, so a shorter run is not a prefix of a longer one).
"""

import math

from horq_keras.search.pareto import pareto_front

__all__ = ["rung_epochs", "survivors"]


def rung_epochs(min_epochs, max_epochs, eta):
    """Epochs of each rung: ``min_epochs * eta**i`` below ``max_epochs``, then
    ``max_epochs``; ``[max_epochs]`` when ``min_epochs >= max_epochs``."""
    if min_epochs < 1 or max_epochs < 1 or eta < 2:
        raise ValueError(f"rungs need min_epochs >= 1, max_epochs >= 1 and eta >= 2; got "
                         f"{min_epochs}, {max_epochs}, {eta}")
    epochs, current = [], min_epochs
    while current < max_epochs:
        epochs.append(current)
        current *= eta
    return epochs + [max_epochs]


def survivors(points, eta, cost="instructions"):
    """The points of one rung that go on to the next: the ``ceil(n / eta)`` most accurate
    (the cheaper first among equals) and every point of the rung's front; in the order of
    ``points``. Points without an accuracy (failed runs) never go on."""
    scored = [p for p in points if p.get("accuracy") is not None]
    ranked = sorted(scored, key=lambda p: (-p["accuracy"], p[cost]))
    keep = {id(p) for p in ranked[:math.ceil(len(scored) / eta)]}
    keep |= {id(p) for p in pareto_front(scored, cost)}
    return [p for p in points if id(p) in keep]
