"""Any generator trains with any discriminator: the seed's ablation specs and a plugin's block train one step."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_plugins import EXAMPLE, ROOT, _dist
from test_train_support import quiet_cpu

import semsyn
from semsyn.cli.train import main

ABLATION = sorted((ROOT / "docs" / "specs").glob("ablation-*.yaml"))
STEP = ["--set", "train.steps=1", "--set", "train.batch_size=2", "--set", "train.log_every=1", "--set", "data.length=4"]


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("spec", ABLATION, ids=lambda p: p.stem)
def test_ablation_spec_trains_one_step(spec: Path, tmp_path: Path) -> None:
    with quiet_cpu():
        assert main([str(spec), "--out", str(tmp_path / "run"), *STEP]) == 0
    loaded = semsyn.load_spec(spec)
    row = metrics(tmp_path / "run")[-1]
    assert row["step"] == 1 and {"G/gan", "D/gan_real", "D/gan_fake"} <= set(row)
    model = semsyn.create_model(f"local-dir:{tmp_path / 'run' / 'final'}", pretrained=True, with_discriminator=True)
    assert model.spec.data["discriminator"] == loaded.data["discriminator"]


def test_ablation_table_covers_both_generators_and_both_discriminators() -> None:
    pairs = set()
    for spec in map(semsyn.load_spec, ABLATION):
        d = spec.data["discriminator"]
        pairs.add((spec.data["generator"]["name"], "fpse" if d.get("semantic_embedding") else "fp"))
    assert pairs == {("spade", "fpse"), ("spade", "fp"), ("cc", "fpse"), ("cc", "fp")}


def test_plugin_cond_norm_trains_inside_the_builtin_spade_generator(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE, site / "semsyn_clade")
    _dist(site, "semsyn-clade", "semsyn_clade", "clade")
    spec = tmp_path / "clade.yaml"
    spec.write_text(
        "base: spade-synthetic\nname: spade-clade\ngenerator: {ngf: 4, cond_norm: clade, cond_norm_params: null}\n"
        "discriminator: {ndf: 8, num_d: 1}\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "semsyn.cli.train",
            str(spec),
            "--out",
            str(tmp_path / "run"),
            *STEP,
            "--set",
            "train.steps=2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert [row["step"] for row in metrics(tmp_path / "run")] == [1, 2]
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import semsyn, sys; m = semsyn.create_model(sys.argv[1], pretrained=True); "
            "print(sorted({type(x).__name__ for x in m.generator.modules() if 'Norm' in type(x).__name__}))",
            f"local-dir:{tmp_path / 'run' / 'final'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert "ClassAdaptiveNorm" in check.stdout
