"""The parts of ``benchmarks/active_learning.py``, one job each.

The script keeps the command line, the constants and the loop over seeds and strategies; these
modules hold what it (and ``report.py``, ``merge_results.py``, ``replot.py``) needs:

- :mod:`.selection` -- the slices each strategy picks across cases (the product's ranking for the
  ``focused`` presets, :func:`barl_core.active.suggest.suggest_slices` for the others).
- :mod:`.rounds` -- the protocol: the shared round-0 model and one (strategy, seed) learning curve.
- :mod:`.summary` -- curves over seeds, paired differences, slices saved, and the pick statistics.
- :mod:`.render` -- the markdown tables, the answer in words, and the plot.
"""
