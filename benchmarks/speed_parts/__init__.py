"""The parts of ``benchmarks/speed.py``, one measurement family each.

The script keeps the command line and the order of the parts; these modules hold the measurements:

- :mod:`.phantoms` -- the phantom cases and the throwaway model the parts measure.
- :mod:`.timing` -- training iterations per method, barl_core vs MONAI sliding window, inference options.
- :mod:`.interactive` -- what the app waits for on its phantom (current slice, whole case, job).
- :mod:`.memory` -- peak memory of large predictions, measured in clean child processes.
- :mod:`.gui` -- event-loop stalls of a Qt application while a training job runs.
- :mod:`.children` -- how the memory and GUI parts start ``speed.py`` again as a child.
- :mod:`.render` -- the markdown tables and the plot of a results file.
"""
