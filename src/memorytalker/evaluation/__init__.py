"""Evaluation: one home for every metric, its reductions, the report and the scoring drivers.

* :mod:`.metrics` - the five per-clip metrics in numpy (FVE, LVE, Lip-max, FDD, LDTW; docs/METRICS.md).
* :mod:`.report` - per-clip records, the field's reductions (pooled, clip means, per subject), display
  scales and the JSON/text report.
* :mod:`.batch` - the frame-pooled metrics on padded torch batches (training validation).
* :mod:`.scoring` - scoring prediction files (``memorytalker evaluate-dir``) and a checkpoint on a dataset
  split (``memorytalker evaluate``).

Import names from the modules; this package imports nothing by itself.
"""
