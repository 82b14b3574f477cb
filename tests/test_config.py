from __future__ import annotations

import pytest

from xmc.exceptions import InvalidConfigError
from xmc.models.xr_linear import XRLinearConfig
from xmc.search.beam import BeamConfig


def test_invalid_value_names_parameter_owner_and_value():
    expected = r"The 'beam_size' parameter of BeamConfig must be an int in the range \[1, inf\]\. Got 0 instead\."
    with pytest.raises(InvalidConfigError, match=expected):
        BeamConfig(beam_size=0)


def test_unknown_option_value_lists_choices():
    with pytest.raises(InvalidConfigError, match="l3-hinge"):
        BeamConfig(post_processor="cubic")


def test_json_round_trip_of_nested_config():
    cfg = XRLinearConfig().with_overrides(["beam.beam_size=20", "ranker.Cp=2.5", "tree.seed=3"])
    again = XRLinearConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert (again.beam.beam_size, again.ranker.Cp, again.tree.seed) == (20, 2.5, 3)


def test_override_of_unknown_key_is_rejected():
    with pytest.raises(InvalidConfigError, match="unknown config key"):
        XRLinearConfig().with_overrides(["beam.width=3"])
    with pytest.raises(InvalidConfigError, match="no parameter"):
        XRLinearConfig.from_dict({"beams": {}})


def test_help_rows_cover_every_leaf_field():
    names = [row[0] for row in XRLinearConfig.help_rows()]
    assert "beam.top_k" in names and "ranker.threshold" in names and "tree.max_leaf_size" in names
    assert all(help_text for _, _, help_text in XRLinearConfig.help_rows())


def test_set_parses_each_value_strictly_as_its_field_type():
    pytest.importorskip("torch")
    from xmc.training.finetune import FinetuneConfig

    assert FinetuneConfig().with_overrides(["amp=False"]).amp is False
    assert FinetuneConfig(amp=False).with_overrides(["amp=true"]).amp is True
    assert FinetuneConfig().with_overrides(["steps=[4,5]"]).steps == (4, 5)
    assert FinetuneConfig().with_overrides(["steps=4,5,6"]).steps == (4, 5, 6)
    assert FinetuneConfig().with_overrides(["lr=1e-4"]).lr == 1e-4
    assert FinetuneConfig().with_overrides(["lr=[1e-4, 2e-5]"]).lr == (1e-4, 2e-5)
    assert XRLinearConfig().with_overrides(["ranker.Cp=2"]).ranker.Cp == 2.0
    for bad, field in (("amp=maybe", "amp"), ("batch_size=1.5", "batch_size"), ("steps=[1,x]", "steps"),
                       ("lr=fast", "lr"), ("batch_size=true", "batch_size")):
        with pytest.raises(InvalidConfigError, match=field):
            FinetuneConfig().with_overrides([bad])


def test_a_value_of_the_wrong_type_is_refused_even_from_json():
    pytest.importorskip("torch")
    from xmc.training.finetune import FinetuneConfig

    with pytest.raises(InvalidConfigError, match="'amp' parameter of FinetuneConfig must be bool"):
        FinetuneConfig.from_dict({"amp": "False"})
    with pytest.raises(InvalidConfigError, match="post_processor"):
        BeamConfig.from_dict({"post_processor": 3})
    with pytest.raises(InvalidConfigError, match="'beam' parameter of XRLinearConfig must be BeamConfig"):
        XRLinearConfig.from_dict({"beam": [1, 2]})
    assert isinstance(XRLinearConfig.from_dict({"ranker": {"Cp": 1}}).ranker.Cp, float)


def test_to_dict_without_drops_nested_and_top_level_settings():
    from xmc.models.xr_transformer import XRTransformerConfig

    config = XRTransformerConfig()
    full, trimmed = config.to_dict(), config.to_dict_without("encoder.name", "finetune.device", "ranker")
    assert "name" in full["encoder"] and "name" not in trimmed["encoder"] and "device" not in trimmed["finetune"]
    assert "ranker" not in trimmed and trimmed["finetune"]["lr"] == full["finetune"]["lr"]
    assert config.to_dict() == full  # the config itself is untouched
