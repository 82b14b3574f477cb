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
