"""tfdisc.presets: one entry per data set, each consistent with the architectures built for it."""

import pytest

from tfdisc import models, presets


@pytest.mark.parametrize("name", list(presets.DATASETS))
def test_every_preset_is_consistent(name):
    preset = presets.get(name)
    assert models.ARCHITECTURES[preset.arch].dataset in (name, "mnist")  # Fashion-MNIST uses MNIST's nets
    assert preset.report_eps and set(preset.report_eps) <= set(preset.sweep_eps)
    assert preset.adv_alpha <= preset.adv_eps and preset.large_eps in preset.sweep_eps
    assert list(preset.sweep_eps) == sorted(preset.sweep_eps) and preset.test_size > 0


def test_an_unknown_data_set_names_the_known_ones():
    with pytest.raises(ValueError, match="Unknown dataset 'svhn'; valid values are 'mnist'"):
        presets.get("svhn")
