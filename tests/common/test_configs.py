"""The one config toolkit (stages.common.configs): plain <-> dataclass round trips and value coercion (issue 11)."""
from __future__ import annotations

import json

import pytest

from stages.common.configs import coerce_value, from_plain, plain, replace_nested
from stages.common.errors import BadOptionError, ConfigValueError
from stages.nn.config import MODEL_PRESETS, DepthAdaptorConfig, ModelConfig
from stages.train.config import TRAIN_PRESETS, TrainConfig


@pytest.mark.parametrize("name", sorted(TRAIN_PRESETS))
def test_every_preset_round_trips_through_json(name):
    cfg = TRAIN_PRESETS[name]
    assert from_plain(TrainConfig, json.loads(json.dumps(plain(cfg)))) == cfg
    assert from_plain(ModelConfig, plain(MODEL_PRESETS.get(name, ModelConfig()))) == MODEL_PRESETS.get(name,
                                                                                                       ModelConfig())


def test_plain_makes_tuples_lists_and_keys_strings():
    assert plain({"a": (1, (2, 3)), 4: [DepthAdaptorConfig(fixed_p=(1.0, 0.0, 0.0, 0.0))]}) == \
        {"a": [1, [2, 3]], "4": [plain(DepthAdaptorConfig(fixed_p=(1.0, 0.0, 0.0, 0.0)))]}
    assert plain(DepthAdaptorConfig(fixed_p=(1.0, 0.0, 0.0, 0.0)))["fixed_p"] == [1.0, 0.0, 0.0, 0.0]


def test_command_line_strings_are_parsed():
    assert coerce_value("yes", bool, "x") is True and coerce_value("off", bool, "x") is False
    assert coerce_value("8", int, "x") == 8 and coerce_value(8.0, int, "x") == 8
    assert coerce_value("none", int | None, "x") is None and coerce_value("2.5", float | None, "x") == 2.5
    assert coerce_value("fid1k, nfs64", tuple[str, ...], "x") == ("fid1k", "nfs64")
    assert coerce_value("0.1,0.9", tuple[float, ...] | None, "x") == (0.1, 0.9)  # element types are honoured
    with pytest.raises(BadOptionError, match="--set x: expected int, got 'abc'"):
        coerce_value("abc", int, "x", "--set x")
    with pytest.raises(BadOptionError, match="expected int, got 2.5"):
        coerce_value(2.5, int, "x")


def test_json_values_are_strict():
    assert coerce_value(256, float, "x", strict=True) == 256.0 and isinstance(coerce_value(256, float, "x",
                                                                                          strict=True), float)
    for value, tp in (("yes", bool), ("8", int), ("2.5", float), (1, bool), (True, int), ("a,b", tuple[str, ...])):
        with pytest.raises(BadOptionError):
            coerce_value(value, tp, "x", strict=True)
    assert coerce_value("none", str | None, "x", strict=True) == "none"  # only JSON null is None


def test_from_plain_names_the_key_and_keeps_defaults():
    assert from_plain(TrainConfig, {"run": {"batch": 16}}).run.batch == 16
    with pytest.raises(ConfigValueError, match=r"^run\.bacth: unknown config key"):
        from_plain(TrainConfig, {"run": {"bacth": 16}})
    with pytest.raises(ConfigValueError, match=r"^loss\.gamma: must be >= 0"):
        from_plain(TrainConfig, {"loss": {"gamma": -1}})
    with pytest.raises(ConfigValueError, match=r"^model\.generator\.cbase: expected int"):
        from_plain(TrainConfig, {"model": {"generator": {"cbase": "big"}}})
    with pytest.raises(ConfigValueError, match=r"^run: expected a mapping"):
        from_plain(TrainConfig, {"run": 3})


def test_replace_nested_takes_dotted_keys_and_dicts_and_checks_every_changed_section():
    cfg = TRAIN_PRESETS["tiny"]
    new = replace_nested(cfg, {"loss.gamma": 0.5, "model": {"camera": {"fov_max_deg": 30.0}, "c_dim": 3},
                               "run.batch": 16})
    assert (new.loss.gamma, new.model.camera.fov_max_deg, new.model.c_dim, new.run.batch) == (0.5, 30.0, 3, 16)
    assert new.model.generator == cfg.model.generator and new.optim == cfg.optim  # untouched sections are shared
    assert (cfg.loss.gamma, cfg.run.batch) != (0.5, 16)  # the original is unchanged
    with pytest.raises(ConfigValueError) as err:  # a section's range check, named by its full dotted key
        replace_nested(cfg, {"model.camera.fov_min_deg": -5.0})
    assert err.value.keys == ("model.camera.fov_min_deg",)
    with pytest.raises(ConfigValueError) as err:  # a combination check of the enclosing section
        replace_nested(cfg, {"model.render": {"ray_start": 2.0, "ray_end": 1.0}})
    assert set(err.value.keys) >= {"model.render.ray_start"}
    with pytest.raises(ConfigValueError, match="unknown config key") as err:
        replace_nested(cfg, {"loss.no_such_field": 1})
    assert err.value.keys == ("loss.no_such_field",)
