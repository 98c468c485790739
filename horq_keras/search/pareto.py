"""The accuracy–cost frontier of a set of trained candidates.

A candidate *dominates* another when it is at least as accurate and at most as costly, and
strictly better in one of the two (Pareto dominance); the *front* is the set no candidate
dominates. Points are mappings with an ``"accuracy"`` (higher is better) and a cost under
any key (lower is better); candidates without an accuracy (failed runs) take no part.
"""

__all__ = ["BudgetError", "choose", "dominates", "pareto_front"]


class BudgetError(ValueError):
    """No candidate fits the budget: the message names the budget and the cheapest."""


def dominates(a, b, cost="instructions"):
    """Whether point ``a`` dominates point ``b`` on (``accuracy``, ``cost``)."""
    at_least = a["accuracy"] >= b["accuracy"] and a[cost] <= b[cost]
    return at_least and (a["accuracy"] > b["accuracy"] or a[cost] < b[cost])


def pareto_front(points, cost="instructions"):
    """The non-dominated points of ``points``, cheapest first (ties keep their order)."""
    scored = [p for p in points if p.get("accuracy") is not None]
    front = [p for p in scored if not any(dominates(q, p, cost) for q in scored)]
    return sorted(front, key=lambda p: p[cost])


def choose(points, budget, cost="instructions", eligible=lambda point: True):
    """The most accurate ``eligible`` point whose ``cost`` is at most ``budget`` (the cheaper
    of equally accurate ones); :class:`BudgetError` when none is.

    The most accurate point under a budget is always on the front (whatever dominated it
    would be as cheap and more accurate), so the choice is a front member.
    """
    scored = [p for p in points if p.get("accuracy") is not None and eligible(p)]
    fitting = [p for p in scored if p[cost] <= budget]
    if not fitting:
        cheapest = min(scored, key=lambda p: p[cost], default=None)
        where = ("no candidate has a verified model" if cheapest is None else
                 f"the cheapest verified candidate, {cheapest.get('label', '?')}, costs "
                 f"{cheapest[cost]:.6g}")
        raise BudgetError(f"--max-cost: no candidate costs at most {budget:.6g} ({cost}); "
                          f"{where}.")
    return max(fitting, key=lambda p: (p["accuracy"], -p[cost]))
