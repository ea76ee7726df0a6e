"""The statistics of experiment results against known values and seeded simulations (no database)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from subgraphs.recommendations.experiment_stats import (
    compare,
    rate,
    relative_lift_interval,
    sample_ratio_mismatch,
    sample_ratio_p_value,
    two_proportion_p_value,
)


def test_z_test_matches_the_hand_computed_example() -> None:
    # 100/1000 against 130/1000: pooled rate 0.115, SE = sqrt(0.115 * 0.885 * (1/1000 + 1/1000)) = 0.0142671,
    # z = 0.03 / 0.0142671 = 2.10274, two-sided p = erfc(z / sqrt 2) = 0.035488.
    assert two_proportion_p_value(100, 1000, 130, 1000) == pytest.approx(0.035488, abs=2e-6)
    # The test is symmetric: which side is called the control does not change the evidence.
    assert two_proportion_p_value(130, 1000, 100, 1000) == pytest.approx(0.035488, abs=2e-6)


def test_identical_rates_give_no_evidence_and_degenerate_counts_do_not_crash() -> None:
    assert two_proportion_p_value(50, 500, 50, 500) == pytest.approx(1.0)
    assert two_proportion_p_value(0, 500, 0, 700) == 1.0
    assert two_proportion_p_value(10, 0, 5, 100) is None
    assert rate(0, 0) is None
    assert rate(3, 12) == 0.25


def test_log_ratio_interval_matches_the_hand_computed_example() -> None:
    # Katz: SE(log RR) = sqrt(1/130 - 1/1000 + 1/100 - 1/1000) = 0.125269; log 1.3 = 0.262364;
    # exp(0.262364 -/+ 1.959964 * 0.125269) - 1 = 0.016984 .. 0.661776.
    lift, low, high = relative_lift_interval(100, 1000, 130, 1000) or (0.0, 0.0, 0.0)
    assert lift == pytest.approx(0.30)
    assert low == pytest.approx(0.016984, abs=1e-5)
    assert high == pytest.approx(0.661776, abs=1e-5)


def test_no_lift_without_control_conversions_and_a_finite_interval_without_treatment_ones() -> None:
    assert relative_lift_interval(0, 1000, 10, 1000) is None
    assert compare(0, 1000, 10, 1000) is None
    lift, low, high = relative_lift_interval(20, 1000, 0, 1000) or (0.0, 0.0, 0.0)
    assert lift == -1.0
    assert -1.0 < low < high < 0.0  # the interval still says "fewer", and stays a finite ratio


def test_a_known_lift_is_detected_and_covered() -> None:
    rng = np.random.default_rng(20261201)
    n = 8000
    control = int(rng.binomial(n, 0.10))
    treatment = int(rng.binomial(n, 0.13))
    result = compare(control, n, treatment, n)
    assert result is not None
    assert result.p_value < 0.05
    assert result.ci_low > 0  # the interval excludes "no lift"
    assert result.ci_low <= 0.30 <= result.ci_high  # and contains the true relative lift


def test_an_a_a_split_is_not_called_significant() -> None:
    rng = np.random.default_rng(7)
    n = 8000
    result = compare(int(rng.binomial(n, 0.10)), n, int(rng.binomial(n, 0.10)), n)
    assert result is not None
    assert result.p_value >= 0.05
    assert result.ci_low < 0 < result.ci_high


@pytest.mark.parametrize(("control_rate", "treatment_rate"), [(0.10, 0.10), (0.10, 0.13), (0.02, 0.025)])
def test_the_interval_covers_the_true_lift_at_about_the_nominal_rate(control_rate: float,
                                                                     treatment_rate: float) -> None:
    rng = np.random.default_rng(11)
    runs, n = 200, 5000
    truth = treatment_rate / control_rate - 1
    covered = 0
    for _ in range(runs):
        interval = relative_lift_interval(int(rng.binomial(n, control_rate)), n,
                                          int(rng.binomial(n, treatment_rate)), n)
        assert interval is not None
        covered += interval[1] <= truth <= interval[2]
    # 95% nominal: 190 of 200 expected, binomial sd about 3; outside 181..198 the interval is miscalibrated.
    assert 181 <= covered <= 198, covered


def test_the_z_test_rejects_a_true_null_at_about_alpha() -> None:
    rng = np.random.default_rng(3)
    runs, n = 400, 5000
    rejected = 0
    for _ in range(runs):
        p_value = two_proportion_p_value(int(rng.binomial(n, 0.1)), n, int(rng.binomial(n, 0.1)), n)
        assert p_value is not None
        rejected += p_value < 0.05
    # 20 of 400 expected, sd about 4.4: too few means the test is blind, too many that it cries wolf.
    assert 8 <= rejected <= 34, rejected


def test_sample_ratio_mismatch_on_a_50_50_experiment() -> None:
    assert sample_ratio_mismatch([5500, 4500], [50, 50])  # chi-square 100, p ~ 1.5e-23
    assert not sample_ratio_mismatch([5030, 4970], [50, 50])  # chi-square 0.36, p = 0.55
    assert sample_ratio_p_value([5030, 4970], [1, 1]) == pytest.approx(math.erfc(math.sqrt(0.36 / 2)), rel=1e-9)


def test_sample_ratio_mismatch_follows_unequal_weights() -> None:
    assert not sample_ratio_mismatch([9010, 990], [0.9, 0.1])
    assert sample_ratio_mismatch([5000, 5000], [0.9, 0.1])
    assert sample_ratio_mismatch([900, 100, 1], [9, 1, 0])  # anyone in a variant of weight 0 is a broken split
    assert not sample_ratio_mismatch([0, 0], [1, 1])  # nothing exposed yet: nothing to say
