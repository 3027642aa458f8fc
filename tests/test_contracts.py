"""The plugin contract: plain generators work, registration checks forwards, losses get one context per phase."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_plugins import ROOT, _dist
from test_train_support import quiet_cpu, tiny_overrides

import semsyn
from semsyn.contracts import LossContext, call_generator
from semsyn.errors import RegistryError, SpecError


class PlainGenerator(torch.nn.Module):
    """The contract most people write: forward(semantics, z=None), nothing else."""

    def __init__(self, label_channels: int, width: int = 4) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(label_channels, 3, 3, padding=1)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.conv(semantics))


SPEC = "labels: {num_classes: 3, dontcare: false, instance_edges: false}\nimage_size: [16, 16]\n"


def test_a_plain_two_argument_generator_works_through_create_model_and_synthesize(tmp_path: Path) -> None:
    semsyn.GENERATORS.register("test-plain-gen")(PlainGenerator)
    try:
        spec = tmp_path / "plain.yaml"
        spec.write_text(SPEC + "generator: {name: test-plain-gen, width: 2}\n")
        model = semsyn.create_model(str(spec))
        image = model.synthesize(torch.zeros(1, 16, 16, dtype=torch.long), seed=0)
    finally:
        semsyn.GENERATORS.unregister("test-plain-gen")
    assert image.shape == (1, 3, 16, 16)
    assert "test-plain-gen" not in semsyn.GENERATORS


def test_call_generator_passes_optional_keywords_only_to_a_forward_that_declares_them() -> None:
    seen = {}

    class WithRng(torch.nn.Module):
        def forward(self, semantics, z=None, *, generator=None):
            seen["generator"] = generator
            return semantics

    rng = torch.Generator()
    call_generator(WithRng(), torch.zeros(1), None, generator=rng, size=(4, 4))
    assert seen["generator"] is rng
    call_generator(PlainGenerator(1), torch.zeros(1, 1, 4, 4), None, generator=rng, size=(4, 4))  # dropped


def test_registering_a_generator_whose_forward_needs_more_names_the_mismatch() -> None:
    class NeedsStyle(torch.nn.Module):
        def forward(self, semantics, z, style):
            return semantics

    class OneArgument(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(RegistryError, match=r"generator 'test-needs-style'.*requires 'style'.*forward\(semantics, z"):
        semsyn.GENERATORS.register("test-needs-style")(NeedsStyle)
    with pytest.raises(RegistryError, match=r"takes 1 positional argument\(s\) \(x\).*forward\(semantics, z=None\)"):
        semsyn.GENERATORS.register("test-one-argument")(OneArgument)
    assert "test-needs-style" not in semsyn.GENERATORS


def test_unregister_an_unknown_name() -> None:
    with pytest.raises(RegistryError, match="cannot unregister generator 'nope'"):
        semsyn.GENERATORS.unregister("nope")


class ClassColourLoss(torch.nn.Module):
    """A plugin loss with a need no built-in role fed: per-class mean colour of fake vs real, from the label map."""

    def compute(self, ctx: LossContext) -> torch.Tensor | None:
        if ctx.phase != "generator":
            return None
        masks = F.interpolate(ctx.semantics, size=ctx.fake.shape[-2:], mode="nearest")
        area = masks.sum((2, 3)).clamp(min=1)[:, None]
        colour = lambda img: torch.einsum("nchw,nkhw->nck", img, masks) / area  # noqa: E731
        return (colour(ctx.fake) - colour(ctx.real)).abs().mean()


def test_a_plugin_loss_with_a_new_need_trains_through_semsyn_train(tmp_path: Path) -> None:
    from semsyn.cli.train import main

    semsyn.LOSSES.register("test-class-colour")(ClassColourLoss)
    try:
        args = tiny_overrides("spade-synthetic")
        args += ["--set", "losses.colour={name: test-class-colour, weight: 2.0}"]
        with quiet_cpu():
            assert main(["spade-synthetic", "--out", str(tmp_path / "run"), *args]) == 0
    finally:
        semsyn.LOSSES.unregister("test-class-colour")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(row["G/colour"] > 0 for row in rows) and "D/colour" not in rows[-1]


def test_a_loss_without_compute_or_role_is_refused_at_registration() -> None:
    class Bare(torch.nn.Module):
        def forward(self, x):
            return x.mean()

    with pytest.raises(RegistryError, match=r"loss 'test-bare'.*no compute\(ctx\) method"):
        semsyn.LOSSES.register("test-bare")(Bare)


def test_a_width_out_of_range_is_a_spec_error_naming_file_line_field_and_range(tmp_path: Path) -> None:
    spec = tmp_path / "neg.yaml"
    spec.write_text(SPEC + "generator:\n  name: spade\n  ngf: -3\n")
    with pytest.raises(SpecError, match=r"neg.yaml:5: field 'generator.ngf': ngf = -3 is out of range.*>= 1"):
        semsyn.load_spec(spec)


def test_an_override_out_of_range_names_the_override_not_the_base_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^override generator.ngf=-3 \(applied to .*spade-synthetic.yaml\).*>= 1"):
        semsyn.create_model("spade-synthetic", generator={"ngf": -3})
    with pytest.raises(SpecError, match=r"^override image_size=\[0, 64\].*each side must be >= 1"):
        semsyn.load_spec("spade-synthetic", ["image_size=[0, 64]"])


SLOW_PLUGIN = """
import time
import torch
import semsyn

time.sleep(0.5)  # registering takes a while: a second thread must wait for it, not see a half-filled registry


@semsyn.GENERATORS.register("slow-gen")
class SlowGen(torch.nn.Module):
    def forward(self, semantics, z=None):
        return semantics
"""


def test_plugins_load_once_and_completely_when_two_threads_ask_at_once(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "slow_plugin").mkdir(parents=True)
    (site / "slow_plugin" / "__init__.py").write_text(SLOW_PLUGIN)
    _dist(site, "semsyn-slow", "slow_plugin", "slow")
    code = textwrap.dedent(
        """
        import threading, semsyn
        from semsyn import plugins
        results = []
        def look():
            try:
                results.append(semsyn.GENERATORS.get("slow-gen").__name__)
            except Exception as exc:
                results.append(repr(exc))
        threads = [threading.Thread(target=look) for _ in range(2)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(results, plugins.loaded_plugins().count("slow"))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['SlowGen', 'SlowGen'] 1"
