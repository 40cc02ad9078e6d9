"""The parts of ``benchmarks/label_efficiency.py``, one job each.

The script itself keeps the command line and the loop over the plan; these modules hold what it
(and ``report.py``, ``merge_results.py``, ``replot.py``, ``active_learning.py``) needs:

- :mod:`.dataset` -- the cases, split and class names of an MSD folder or the Left Atrium h5 set.
- :mod:`.plan` -- budgets, the runs of the plan and their keys, ``--set`` overrides, what each run sees.
- :mod:`.runs` -- one training + evaluation run, and the up-front time estimate.
- :mod:`.summary` -- runs grouped over seeds, and their markdown tables.
- :mod:`.plots` -- Dice against the labelled budget, and the learning curves.
"""
