"""The parts of ``benchmarks/gpu_check.py``, one check each.

The script keeps the command line and the order of the parts; these modules hold the checks:

- :mod:`.device` -- CUDA or not, peak and free GPU memory (``None`` on the CPU).
- :mod:`.inputs` -- the ``full`` preset's config (``--tiny``: shrunk) and the seeded phantoms.
- :mod:`.throughput` -- the ``methods`` and ``predict`` parts: iterations/s per method, 512^3 prediction.
- :mod:`.release` -- the ``release`` part: free device memory after a training child ends or is cancelled.
- :mod:`.oom` -- the ``oom`` part: a real (on the CPU: injected) out-of-memory and the back-off.
- :mod:`.la` -- the ``la`` part: a short BARL run on Left Atrium h5 data.
- :mod:`.render` -- the markdown tables of a results file.
"""
