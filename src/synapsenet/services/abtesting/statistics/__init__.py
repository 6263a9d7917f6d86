"""The statistics of A/B tests, as pure functions over sufficient statistics.

Start from :class:`StatisticalAnalyzer`; arms are :class:`SampleStats` (or
:class:`CovariateStats` for CUPED). Modules, one concept each:

- :mod:`.sufficient`: the sufficient-statistic dataclasses, pooled with ``+``.
- :mod:`.frequentist`: z-test, Welch's t-test, lifts with CIs, margin tests.
- :mod:`.sequential`: always-valid mSPRT p-values and confidence sequences.
- :mod:`.variance_reduction`: CUPED.
- :mod:`.corrections`: Holm and Benjamini-Hochberg.
- :mod:`.power`: power and sample size.
- :mod:`.srm`: sample-ratio mismatch.
- :mod:`.comparison`: one metric, treatment against control, for the results page.
- :mod:`.results`: result dataclasses and enums.
"""

from synapsenet.services.abtesting.statistics.analyzer import StatisticalAnalyzer
from synapsenet.services.abtesting.statistics.results import (
    Alternative,
    ComparisonResult,
    CorrectionMethod,
    CorrectionResult,
    CupedAdjustment,
    Direction,
    IntervalEstimate,
    MarginHypothesis,
    MarginTestResult,
    MetricKind,
    ResultCode,
    SampleSize,
    SequentialResult,
    SignificanceResult,
    SRMResult,
    Verdict,
)
from synapsenet.services.abtesting.statistics.sufficient import CovariateStats, SampleStats

__all__ = [
    "Alternative",
    "ComparisonResult",
    "CorrectionMethod",
    "CorrectionResult",
    "CovariateStats",
    "CupedAdjustment",
    "Direction",
    "IntervalEstimate",
    "MarginHypothesis",
    "MarginTestResult",
    "MetricKind",
    "ResultCode",
    "SRMResult",
    "SampleSize",
    "SampleStats",
    "SequentialResult",
    "SignificanceResult",
    "StatisticalAnalyzer",
    "Verdict",
]
