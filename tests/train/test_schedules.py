"""Schedules of 3DGP ref §5.5 with golden values, including the §15 mid-training state at kimg 1000."""
from __future__ import annotations

import pytest

from stages.train import schedules as S
from stages.train.config import LossConfig


def test_lin_clamps_and_interpolates():
    assert S.lin(-5, 1.0, 3.0, 10) == 1.0
    assert S.lin(5, 1.0, 3.0, 10) == 2.0
    assert S.lin(50, 1.0, 3.0, 10) == 3.0
    assert S.lin(5, 1.0, 3.0, 0) == 3.0


def test_mid_training_state_of_ref_15():
    st = S.schedule_state(1000.0, LossConfig())
    assert st.blur_sigma == 0.0
    assert st.nerf_noise_std == pytest.approx(0.8)
    assert st.patch_beta == pytest.approx(0.0809)
    assert st.emd_multiplier == pytest.approx(0.1)
    assert st.kd_weight == pytest.approx(0.99)
    assert st.depth_start_p == pytest.approx(0.235)


def test_start_and_end_values():
    st0 = S.schedule_state(0.0, LossConfig())
    assert (st0.blur_sigma, st0.nerf_noise_std, st0.patch_beta, st0.emd_multiplier, st0.kd_weight,
            st0.depth_start_p) == (10.0, 1.0, 0.001, 0.0, 1.0, 0.25)
    end = S.schedule_state(1e6, LossConfig())
    assert (end.blur_sigma, end.nerf_noise_std, end.patch_beta, end.emd_multiplier, end.depth_start_p) == \
        (0.0, 0.0, 0.8, 1.0, pytest.approx(0.1))
    assert S.kd_weight(25000) == pytest.approx(0.75)  # ref §4.3: still 0.75 at the end of a 25M-image run
    assert S.blur_sigma(100) == pytest.approx(5.0)


def test_ema_gamma_and_fixed_depth_p():
    # Half-life 20 kimg at batch 64 after the rampup; rampup 0.05 * t before.
    assert S.ema_beta(10**7, 64) == pytest.approx(0.5 ** (64 / 20000))
    assert S.ema_beta(100_000, 64) == pytest.approx(0.5 ** (64 / 5000))
    assert S.r1_gamma(None, 256, 64) == pytest.approx(0.2048)
    assert S.r1_gamma(None, 128, 64) == pytest.approx(0.0512)
    assert S.r1_gamma(0.05, 256, 64) == 0.05
    st = S.schedule_state(0.0, LossConfig(depth_adaptor_p=0.9))  # P(adapted) 0.9 = the schedule's end point
    assert st.depth_start_p == pytest.approx(0.1) == S.schedule_state(10**5, LossConfig()).depth_start_p
    assert S.schedule_state(5000.0, LossConfig(depth_adaptor_p=0.0)).depth_start_p == 1.0
