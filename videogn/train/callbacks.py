"""videogn's callbacks, re-exported from the modules of their concerns (use `videogn.train.callbacks.X` in YAML).

Lightning's ModelCheckpoint, LearningRateMonitor and ThroughputMonitor do the rest.

- `videogn.train.resume`: `ResumeGuard`, which refuses a resume whose schedule or data order would silently change.
- `videogn.train.precise_bn`: `PreciseBN`, BN running statistics recomputed before every validation and test.
- `videogn.train.norm_stats`: `NormStatistics`, norm-layer inputs, |γ| and gradient norms every N steps.
- `videogn.train.dashboards`: `TensorBoardDashboards`, TensorBoard beyond the scalars (layout, pictures, HPARAMS).
- `videogn.train.monitors`: `DataWaitMonitor`, `BadVideoMonitor`, `ValidationReport`, `ComputeMemory` and
  `ClipThroughput`.
"""

from __future__ import annotations

from videogn.train.dashboards import COMPARISON_LAYOUT, TensorBoardDashboards, comparison_hparams
from videogn.train.monitors import BadVideoMonitor, ClipThroughput, ComputeMemory, DataWaitMonitor, ValidationReport
from videogn.train.norm_stats import NormStatistics
from videogn.train.precise_bn import PreciseBN
from videogn.train.resume import ResumeGuard

__all__ = [
    "COMPARISON_LAYOUT",
    "BadVideoMonitor",
    "ClipThroughput",
    "ComputeMemory",
    "DataWaitMonitor",
    "NormStatistics",
    "PreciseBN",
    "ResumeGuard",
    "TensorBoardDashboards",
    "ValidationReport",
    "comparison_hparams",
]
