"""`make demo` reuses a trained run only when the whole recipe matches, not just its train section."""

from __future__ import annotations

import pytest

from semsyn.cli.demo import _recipe, _spec, _train


def _write_final(out, spec) -> None:
    final = out / "run" / "final"
    final.mkdir(parents=True)
    spec.dump(final / "spec.yaml")


def test_a_run_of_the_same_recipe_is_reused_whatever_its_hub_record(tmp_path):
    spec = _spec(None).resolved()
    shipped = spec.with_overrides(["pretrained.published=true", "description=another text"])
    assert _recipe(shipped) == _recipe(spec)
    _write_final(tmp_path, shipped)
    assert _train(tmp_path, None) == tmp_path / "run" / "final"  # returned at once: nothing trains


@pytest.mark.parametrize("change", ["generator.noise_injection=false", "discriminator.ndf=16", "train.lr_g=1e-4"])
def test_a_run_of_another_recipe_is_refused(tmp_path, change):
    _write_final(tmp_path, _spec(None).resolved().with_overrides([change]))
    with pytest.raises(SystemExit, match="holds a run of another recipe"):
        _train(tmp_path, None)
