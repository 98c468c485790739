"""``horq-keras search``: an accuracy-vs-ARM-cost frontier over a declared space of models.

Import from the modules (the package imports none of them):

- :mod:`.space` — the candidates: ``--space MODEL key=v1/v2 ...`` expanded and checked;
- :mod:`.pareto` — the non-dominated set and the choice under a budget;
- :mod:`.halving` — successive halving on epochs: the rungs and who survives one;
- :mod:`.runs` — one candidate trained at one rung by a ``horq-keras train`` process,
  read back from its report when it is there, and its converted model's cost;
- :mod:`.output` — the table, the JSON and the plot of a search;
- :mod:`.search` — the command itself; :mod:`.cli` — its options.
"""
