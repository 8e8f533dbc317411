"""(layer: monitoring; pure, no I/O) Monitoring: drift statistics and the standalone ``drift`` report.

>>> from stead.monitoring import drift, METHODS
>>> sorted(METHODS)
['chi2', 'classifier', 'jensenshannon', 'ks', 'psi', 'wasserstein']
"""

from __future__ import annotations

from stead.monitoring.drift import DriftReport, choose_method, drift
from stead.monitoring.stats import (
    KS,
    METHODS,
    PSI,
    ChiSquared,
    DomainClassifier,
    DriftResult,
    DriftStat,
    JensenShannon,
    Wasserstein,
)

__all__ = [
    "KS",
    "METHODS",
    "PSI",
    "ChiSquared",
    "DomainClassifier",
    "DriftReport",
    "DriftResult",
    "DriftStat",
    "JensenShannon",
    "Wasserstein",
    "choose_method",
    "drift",
]
