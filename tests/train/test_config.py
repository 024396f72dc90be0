"""TrainConfig presets, typed overrides and the JSON round trip (issue 5 item 1; 3DGP ref §12, §5.3)."""
from __future__ import annotations

import json

import pytest

from stages.common.errors import BadOptionError
from stages.train.config import TRAIN_PRESETS, from_dict, get_train_preset, to_dict
from stages.train.loss import lazy_reg_adam_params
from stages.train.overrides import Override, apply_overrides, parse_set
from stages.train.schedules import ema_half_life_kimg


def test_paper_presets_follow_ref_12():
    for name in ("dogs", "elephants", "horses", "imagenet"):
        cfg = get_train_preset(name)
        assert (cfg.run.batch, cfg.run.kimg, cfg.loss.r1_interval) == (64, 25000.0, 16)
        assert (cfg.optim.g_lr, cfg.optim.d_lr, cfg.ema.ema_kimg, cfg.ema.rampup) == (0.0025, 0.002, None, 0.05)
        assert ema_half_life_kimg(cfg.ema.ema_kimg, cfg.run.batch) == 20.0  # batch x 10/32 (ref §5.4)
        assert cfg.run.metrics == ("fid2k_full", "nfs256") and cfg.data.mirror
    assert get_train_preset("dogs").loss.gamma is None  # 'auto' = 0.2048 at 256^2, batch 64
    imagenet = get_train_preset("imagenet")
    assert imagenet.loss.gamma == 0.05 and imagenet.data.cond
    assert imagenet.model.generator.cbase == 65536 and imagenet.model.discriminator.cmax == 1024
    assert set(TRAIN_PRESETS) == {"tiny", "demo", "toy64", "dogs", "elephants", "horses", "imagenet"}
    with pytest.raises(BadOptionError, match="--preset: unknown preset"):
        get_train_preset("cats")


def test_lazy_regularisation_correction_of_ref_13():
    lr, betas = lazy_reg_adam_params(0.002, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.0018824, abs=1e-7) and betas[1] == pytest.approx(0.990585, abs=1e-6)


def test_typed_overrides_and_round_trip():
    cfg = apply_overrides(get_train_preset("tiny"), [
        parse_set("loss.gamma=auto"), parse_set("run.batch_gpu=4"), parse_set("data.mirror=false"),
        parse_set("run.metrics=fid1k, nfs16"), parse_set("model.camera.fov_max_deg=21"),
        Override("--kimg", "run.kimg", 3), parse_set("ema.rampup=none")])
    assert cfg.loss.gamma is None and cfg.run.batch_gpu == 4 and cfg.data.mirror is False
    assert cfg.run.metrics == ("fid1k", "nfs16") and cfg.model.camera.fov_max_deg == 21.0
    assert cfg.run.kimg == 3.0 and isinstance(cfg.run.kimg, float) and cfg.ema.rampup is None
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg
    for text, message in [("run.batch=1.5", "expected int, got '1.5'"), ("data.mirror=maybe", "expected bool"),
                          ("loss=1", "is a config section"), ("run", "expected section.key=value"),
                          ("model.patch_resolution=48", "power of two")]:
        with pytest.raises(BadOptionError, match=message):
            apply_overrides(get_train_preset("tiny"), [parse_set(text)])


def test_threads_auto_is_kept_as_auto_not_read_as_none():
    """`--threads auto` once became None (torch's default, one thread per core) because "auto" is a none-word for
    optional fields: the run then thrashed beside a busy program. Text fields keep "auto"; numbers still read it
    as None."""
    from stages.train.flags import flag_overrides

    for overrides in (flag_overrides({"--threads": "auto"}), [parse_set("run.threads=auto")]):
        cfg = apply_overrides(get_train_preset("tiny"), overrides)
        assert cfg.run.threads == "auto"
    cfg = apply_overrides(get_train_preset("demo"), [parse_set("run.threads=none"), parse_set("loss.gamma=auto")])
    assert cfg.run.threads is None and cfg.loss.gamma is None


def test_every_section_validates_itself_and_options_are_named_as_typed():
    from stages.common.errors import ConfigValueError
    from stages.train.config import EmaConfig, LossConfig, RunConfig, TrainConfig

    for build, message in [(lambda: LossConfig(gamma=-1.0), "^gamma: must be >= 0"),
                           (lambda: LossConfig(kd_weight=float("inf")), "^kd_weight: must be finite"),
                           (lambda: EmaConfig(ema_kimg=-1), "^ema_kimg: must be >= 0"),
                           (lambda: RunConfig(state_kimg=-1.0), r"^state_kimg: must be in \[0, 1e\+06\]"),
                           (lambda: LossConfig(r1_interval=0), "^r1_interval: must be >= 1"),
                           (lambda: RunConfig(keep_states=0), "^keep_states: must be >= 1"),
                           (lambda: RunConfig(kimg=float("inf")), "^kimg: must be finite"),
                           (lambda: RunConfig(batch="8"), "^batch: expected int, got '8'"),
                           (lambda: RunConfig(batch=8, batch_gpu=16), "^batch_gpu: 16 exceeds the global batch")]:
        with pytest.raises(ConfigValueError, match=message):
            build()
    assert RunConfig(kimg=3).kimg == 3.0 and isinstance(RunConfig(kimg=3).kimg, float)
    tiny = get_train_preset("tiny")
    # The flag and the --set of one field are checked by the same code and named as typed.
    for ov, message in [(Override("--gamma", "loss.gamma", -1.0), "--gamma: must be >= 0, got -1"),
                        (parse_set("loss.gamma=-1"), "--set loss.gamma: must be >= 0, got -1")]:
        with pytest.raises(BadOptionError, match=message):
            apply_overrides(tiny, [ov])
    # Combinations are checked once all options are set, whatever their order.
    cfg = apply_overrides(tiny, [parse_set("run.batch_gpu=16"), parse_set("run.batch=32")])
    assert (cfg.run.batch, cfg.run.batch_gpu) == (32, 16)
    with pytest.raises(BadOptionError, match="--no-depth-adaptor: --depth-adaptor-p fixes"):
        apply_overrides(tiny, [Override("--depth-adaptor-p", "loss.depth_adaptor_p", 0.2),
                               Override("--no-depth-adaptor", "model.depth_adaptor.enabled", False)])
    with pytest.raises(BadOptionError, match=r"--set model.depth_adaptor.enabled: loss.depth_adaptor_p fixes"):
        apply_overrides(tiny, [parse_set("loss.depth_adaptor_p=0.2"), parse_set("model.depth_adaptor.enabled=no")])
    # A saved config is checked by the same code (resume names the file).
    data = to_dict(tiny)
    data["run"]["tick_kimg"] = 0
    with pytest.raises(BadOptionError, match=r"^run.tick_kimg: must be > 0"):
        from_dict(data)
    assert TrainConfig() == from_dict(to_dict(TrainConfig()))
