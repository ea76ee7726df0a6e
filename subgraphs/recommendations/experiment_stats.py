"""The statistics of an A/B experiment's results: pure functions of counts, no I/O (experiments.py reads them).

- Conversion rate of a variant: subjects who converted / subjects exposed.
- Relative lift of a variant against the control (the first variant): rate_t / rate_c - 1, with a confidence
  interval on the log of the rate ratio (Katz et al. 1978): SE(log RR) = sqrt(1/x_t - 1/n_t + 1/x_c - 1/n_c),
  interval exp(log RR ± z·SE) - 1. Unlike the delta method on the difference divided by the control rate, it
  stays inside (-1, ∞) and is not symmetric around the lift, which matches the skew of a ratio at small rates.
  A variant with no conversions at all has no log: 0.5 is added to every cell then (Haldane-Anscombe).
- p-value: the two-sided two-proportion z-test with the pooled rate (the textbook test of equal rates).
- Sample ratio mismatch: a chi-square goodness-of-fit of the exposures against the shares the weights promise;
  p < 0.001 means the split itself is broken (assignment, logging, bots), so no result of the experiment can be
  trusted. The strict threshold is the usual one: this check runs on every read, and a false alarm is costly.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from scipy import stats

SRM_ALPHA = 0.001
CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True, slots=True)
class Comparison:
    """A variant against the control. `lift` and its interval are relative: 0.3 is 30% more conversions."""
    lift: float
    ci_low: float
    ci_high: float
    p_value: float


def rate(conversions: int, exposures: int) -> float | None:
    """None without exposures: no rate is known yet, which is not a rate of 0."""
    return conversions / exposures if exposures > 0 else None


def two_proportion_p_value(control_conversions: int, control_exposures: int, treatment_conversions: int,
                           treatment_exposures: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test; None when a side has no exposures. Both rates
    0 or both 1 is no evidence of a difference: p = 1."""
    if control_exposures <= 0 or treatment_exposures <= 0:
        return None
    pooled = (control_conversions + treatment_conversions) / (control_exposures + treatment_exposures)
    variance = pooled * (1 - pooled) * (1 / control_exposures + 1 / treatment_exposures)
    if variance <= 0:
        return 1.0
    difference = treatment_conversions / treatment_exposures - control_conversions / control_exposures
    z = difference / math.sqrt(variance)
    return float(2 * stats.norm.sf(abs(z)))


def relative_lift_interval(control_conversions: int, control_exposures: int, treatment_conversions: int,
                           treatment_exposures: int, *,
                           confidence: float = CONFIDENCE) -> tuple[float, float, float] | None:
    """(lift, low, high) of the treatment's rate relative to the control's (log rate ratio, see the module);
    None when the control converted nobody (no ratio exists) or a side has no exposures."""
    if control_exposures <= 0 or treatment_exposures <= 0 or control_conversions <= 0:
        return None
    lift = (treatment_conversions / treatment_exposures) / (control_conversions / control_exposures) - 1
    x_t, n_t, x_c, n_c = (float(treatment_conversions), float(treatment_exposures), float(control_conversions),
                          float(control_exposures))
    if x_t == 0:
        x_t, n_t, x_c, n_c = x_t + 0.5, n_t + 0.5, x_c + 0.5, n_c + 0.5
    log_ratio = math.log((x_t / n_t) / (x_c / n_c))
    standard_error = math.sqrt(max(0.0, 1 / x_t - 1 / n_t + 1 / x_c - 1 / n_c))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return lift, math.exp(log_ratio - z * standard_error) - 1, math.exp(log_ratio + z * standard_error) - 1


def compare(control_conversions: int, control_exposures: int, treatment_conversions: int,
            treatment_exposures: int) -> Comparison | None:
    """The treatment against the control, or None when the counts cannot tell (see the two functions above)."""
    interval = relative_lift_interval(control_conversions, control_exposures, treatment_conversions,
                                      treatment_exposures)
    p_value = two_proportion_p_value(control_conversions, control_exposures, treatment_conversions,
                                     treatment_exposures)
    if interval is None or p_value is None:
        return None
    lift, low, high = interval
    return Comparison(lift=lift, ci_low=low, ci_high=high, p_value=p_value)


def sample_ratio_p_value(exposures: Sequence[int], weights: Sequence[float]) -> float | None:
    """p-value of the chi-square goodness-of-fit of `exposures` against the shares of `weights` (same order);
    None without exposures. Exposures in a variant of weight 0 cannot happen by chance: p = 0."""
    if len(exposures) != len(weights):
        raise ValueError("one weight per variant")
    total = sum(exposures)
    weight_sum = sum(weights)
    if total == 0 or weight_sum <= 0:
        return None
    if any(count > 0 and weight <= 0 for count, weight in zip(exposures, weights, strict=True)):
        return 0.0
    observed = [count for count, weight in zip(exposures, weights, strict=True) if weight > 0]
    expected = [total * weight / weight_sum for weight in weights if weight > 0]
    if len(observed) < 2:
        return 1.0  # one variant takes everyone: nothing to mismatch
    return float(stats.chisquare(observed, expected).pvalue)


def sample_ratio_mismatch(exposures: Sequence[int], weights: Sequence[float], *, alpha: float = SRM_ALPHA) -> bool:
    p_value = sample_ratio_p_value(exposures, weights)
    return p_value is not None and p_value < alpha
