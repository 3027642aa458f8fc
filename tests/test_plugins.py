"""Entry-point plugins: a third-party package registers components that specs use without importing it.

Each test runs a fresh interpreter with a temporary site folder holding the example plugin of
docs/examples/semsyn-clade and a `.dist-info` declaring its `semsyn.plugins` entry point, as pip would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "semsyn-clade" / "semsyn_clade"


def _dist(site: Path, dist: str, module: str, entry: str) -> None:
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[semsyn.plugins]\n{entry} = {module}\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE, site / "semsyn_clade")
    _dist(site, "semsyn-clade", "semsyn_clade", "clade")
    return site


def run_python(site: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


SPEC = """\
labels: {num_classes: 3, dontcare: false, instance_edges: false}
image_size: [32, 32]
"""


def test_plugin_generator_is_built_from_a_spec_without_importing_the_plugin(site: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + "generator: {name: clade-lite, width: 8, num_blocks: 2}\n")
    out = run_python(
        site,
        f"""
        import sys, torch, semsyn
        model = semsyn.create_model({str(spec)!r})
        image = model.synthesize(torch.zeros(1, 32, 32, dtype=torch.long))
        print(type(model.generator).__module__, tuple(image.shape))
    """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["semsyn_clade", "(1,", "3,", "32,", "32)"]


def test_plugin_block_is_used_inside_the_builtin_spade_generator(site: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + "generator: {name: spade, ngf: 2, cond_norm: clade}\n")
    out = run_python(
        site,
        f"""
        import semsyn
        model = semsyn.create_model({str(spec)!r})
        print(sorted({{type(m).__name__ for m in model.generator.modules() if 'Norm' in type(m).__name__}}))
    """,
    )
    assert out.returncode == 0, out.stderr
    assert "ClassAdaptiveNorm" in out.stdout and "SPADE" not in out.stdout.replace("ClassAdaptiveNorm", "")


def test_broken_plugin_is_reported_and_the_others_still_work(site: Path) -> None:
    (site / "broken_plugin").mkdir()
    (site / "broken_plugin" / "__init__.py").write_text("raise ImportError('boom: missing dependency')\n")
    _dist(site, "semsyn-broken", "broken_plugin", "broken")
    out = run_python(
        site,
        """
        import semsyn
        from semsyn.plugins import failed_plugins
        print(semsyn.list_components("generator"))
        print([f.distribution for f in failed_plugins()])
    """,
    )
    assert out.returncode == 0, out.stderr
    assert "semsyn-broken 0.1.0" in out.stderr and "boom: missing dependency" in out.stderr
    assert "'clade-lite'" in out.stdout and "'spade'" in out.stdout
    assert "['semsyn-broken 0.1.0']" in out.stdout


def test_plugins_load_lazily_and_once(site: Path) -> None:
    out = run_python(
        site,
        """
        import sys, semsyn
        from semsyn import plugins
        before = list(plugins.loaded_plugins())
        semsyn.list_components(); semsyn.GENERATORS.get("clade-lite")
        print(before, plugins.loaded_plugins())
    """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] ['semsyn_models', 'clade']"


def test_import_semsyn_does_not_import_timm_or_torchvision() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, semsyn; semsyn.list_components(); "
            "print([m for m in ('timm', 'torchvision') if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
