"""The Hub as model store: push, pull by branch / tag / commit, offline, errors, corruption, model cards.

Everything talks HTTP to semsyn.testing.hub_server on 127.0.0.1 through the real huggingface_hub client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import semsyn
import semsyn.hub
from semsyn.errors import CheckpointError, HubError
from semsyn.testing.hub_server import HubServer

ROOT = Path(__file__).resolve().parents[1]
TINY = """\
schema: 1
name: tiny-hub
labels: {num_classes: 3, dontcare: false, instance_edges: true}
image_size: [64, 64]
generator: {name: spade, ngf: 2, norm: instance}
"""


def tiny_model(tmp_path: Path, seed: int) -> semsyn.SynthesisModel:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    torch.manual_seed(seed)
    return semsyn.create_model(str(spec))


LABEL = torch.arange(64 * 64).reshape(1, 64, 64) % 3


def run_fresh(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_push_then_pull_in_a_fresh_process_gives_identical_outputs(hub: HubServer, tmp_path: Path) -> None:
    model = tiny_model(tmp_path, 0)
    model.push_to_hub("org/tiny")
    expected = model.synthesize(LABEL, seed=0)
    torch.save(LABEL, tmp_path / "label.pt")
    out = run_fresh(
        f"""
        import torch, semsyn
        model = semsyn.create_model("hf-hub:org/tiny", pretrained=True)
        image = model.synthesize(torch.load({str(tmp_path / "label.pt")!r}), seed=0)
        torch.save(image, {str(tmp_path / "pulled.pt")!r})
        print(sorted(model.trained_parts))
    """,
        {"HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "cache2"), "HF_HUB_DISABLE_XET": "1"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['generator']"
    assert torch.equal(torch.load(tmp_path / "pulled.pt"), expected)


def test_revisions_by_tag_branch_and_commit_then_offline_with_server_stopped(hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    first, second = tiny_model(tmp_path, 1), tiny_model(tmp_path, 2)
    sha1 = first.push_to_hub("org/rev")
    HfApi(endpoint=hub.endpoint).create_tag("org/rev", tag="v1", revision=sha1)
    sha2 = second.push_to_hub("org/rev", commit_message="second")
    want1, want2 = first.synthesize(LABEL, seed=0), second.synthesize(LABEL, seed=0)
    assert not torch.equal(want1, want2)
    for source, want in (
        ("hf-hub:org/rev@v1", want1),
        (f"hf-hub:org/rev@{sha1}", want1),
        ("hf-hub:org/rev@main", want2),
        ("hf-hub:org/rev", want2),
        (f"hf-hub:org/rev@{sha2}", want2),
    ):
        assert torch.equal(semsyn.create_model(source, pretrained=True).synthesize(LABEL, seed=0), want), source
    endpoint = hub.endpoint
    hub.stop()
    torch.save(LABEL, tmp_path / "label.pt")
    out = run_fresh(
        f"""
        import torch, semsyn
        label = torch.load({str(tmp_path / "label.pt")!r})
        for src in ("hf-hub:org/rev@v1", "hf-hub:org/rev@main", "hf-hub:org/rev@{sha1}"):
            torch.save(semsyn.create_model(src, pretrained=True).synthesize(label, seed=0),
                       {str(tmp_path)!r} + "/off-" + src[-2:] + ".pt")
    """,
        {"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": os.environ["HF_HUB_CACHE"], "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr
    assert torch.equal(torch.load(tmp_path / "off-v1.pt"), want1)
    assert torch.equal(torch.load(tmp_path / "off-in.pt"), want2)
    assert torch.equal(torch.load(tmp_path / f"off-{sha1[-2:]}.pt"), want1)


def test_push_to_a_new_branch(hub: HubServer, tmp_path: Path) -> None:
    tiny_model(tmp_path, 3).push_to_hub("org/br")
    other = tiny_model(tmp_path, 4)
    other.push_to_hub("org/br", revision="experiment")
    got = semsyn.create_model("hf-hub:org/br@experiment", pretrained=True).synthesize(LABEL, seed=0)
    assert torch.equal(got, other.synthesize(LABEL, seed=0))


def test_missing_repo(hub: HubServer) -> None:
    with pytest.raises(HubError, match=r"Hub repo org/none does not exist.*push_to_hub"):
        semsyn.create_model("hf-hub:org/none", pretrained=True)


def test_missing_revision(hub: HubServer, tmp_path: Path) -> None:
    tiny_model(tmp_path, 0).push_to_hub("org/tiny")
    with pytest.raises(HubError, match=r"org/tiny has no revision 'v9'.*branch, tag or commit"):
        semsyn.create_model("hf-hub:org/tiny@v9", pretrained=True)


def test_repo_that_is_not_a_semsyn_model(hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("org/other")
    (tmp_path / "x.txt").write_text("hello")
    api.upload_file(path_or_fileobj=str(tmp_path / "x.txt"), path_in_repo="x.txt", repo_id="org/other")
    with pytest.raises(HubError, match=r"org/other@main is not a semsyn model: it has no spec.yaml"):
        semsyn.create_model("hf-hub:org/other", pretrained=True)


def test_missing_weights_file(hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("org/nospec")
    (tmp_path / "spec.yaml").write_text(TINY)
    api.upload_file(path_or_fileobj=str(tmp_path / "spec.yaml"), path_in_repo="spec.yaml", repo_id="org/nospec")
    with pytest.raises(HubError, match=r"org/nospec@main is incomplete: it has no model.safetensors"):
        semsyn.create_model("hf-hub:org/nospec", pretrained=True)


def test_offline_with_nothing_cached(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match=r"not in the Hub cache.*HF_HUB_OFFLINE"):
        semsyn.create_model("hf-hub:org/tiny", pretrained=True)


def test_builtin_name_without_published_weights_says_how_to_convert(hub: HubServer) -> None:
    with pytest.raises(
        HubError, match=r"no semsyn weights are published for 'spade-coco'.*semsyn-convert official .* --push-to-hub"
    ):
        semsyn.create_model("spade-coco", pretrained=True)


def test_file_corrupted_on_the_server_is_detected(hub: HubServer, tmp_path: Path) -> None:
    tiny_model(tmp_path, 0).push_to_hub("org/bad")
    hub.corrupt_file("org/bad", "model.safetensors")
    with pytest.raises((CheckpointError, HubError), match=r"corrupt|not a readable|size"):
        semsyn.create_model("hf-hub:org/bad", pretrained=True)


def test_file_corrupted_in_the_cache_is_detected(hub: HubServer, tmp_path: Path) -> None:
    tiny_model(tmp_path, 0).push_to_hub("org/cached")
    semsyn.create_model("hf-hub:org/cached", pretrained=True)
    blob = next(p for p in (tmp_path / "hf-cache").rglob("model.safetensors"))
    data = bytearray(blob.resolve().read_bytes())
    data[-5] ^= 0xFF
    blob.resolve().write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"corrupt.*sha256.*download it again"):
        semsyn.create_model("hf-hub:org/cached", pretrained=True)


def test_model_card_is_written_and_merged_not_overwritten(hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import HfApi, hf_hub_download

    model = tiny_model(tmp_path, 0)
    model.push_to_hub("org/card", card={"tags": ["demo"]})
    path = hf_hub_download("org/card", "README.md", endpoint=hub.endpoint, cache_dir=tmp_path / "c1")
    text = Path(path).read_text()
    assert "library_name: semsyn" in text and "- demo" in text and 'create_model("hf-hub:org/card"' in text
    edited = text.replace("license:", "extra_field: kept\nlicense:") + "\n## Notes by the author\nKeep me.\n"
    (tmp_path / "README.md").write_text(edited)
    HfApi(endpoint=hub.endpoint).upload_file(
        path_or_fileobj=str(tmp_path / "README.md"), path_in_repo="README.md", repo_id="org/card"
    )
    model.push_to_hub("org/card", card={"tags": ["second"]})
    merged = Path(
        hf_hub_download("org/card", "README.md", endpoint=hub.endpoint, cache_dir=tmp_path / "c2")
    ).read_text()
    assert "Keep me." in merged and "extra_field: kept" in merged
    assert "- demo" in merged and "- second" in merged
    assert merged.count("semsyn:begin") == 1


def test_semsyn_push_cli_publishes_a_folder(hub: HubServer, tmp_path: Path) -> None:
    from semsyn.cli.push import main

    model = tiny_model(tmp_path, 5)
    model.save_pretrained(tmp_path / "folder")
    assert main([str(tmp_path / "folder"), "org/cli"]) == 0
    got = semsyn.create_model("hf-hub:org/cli", pretrained=True).synthesize(LABEL, seed=0)
    assert torch.equal(got, model.synthesize(LABEL, seed=0))


def test_semsyn_push_cli_refuses_a_non_model_folder(hub: HubServer, tmp_path: Path, capsys) -> None:
    from semsyn.cli.push import main

    assert main([str(tmp_path), "org/cli"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a semsyn model folder" in err


def test_sample_images_travel_with_the_card(hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    model = tiny_model(tmp_path, 6)
    model.push_to_hub("org/samples", samples={"grid": model.synthesize(LABEL, seed=0)})
    files = HfApi(endpoint=hub.endpoint).list_repo_files("org/samples")
    assert "samples/grid.png" in files
    card = semsyn.hub.download_file("org/samples", "README.md").read_text()
    assert "![grid](samples/grid.png)" in card


def test_a_training_run_publishes_its_final_model(hub: HubServer, tmp_path: Path) -> None:
    from test_train_support import quiet_cpu, tiny_overrides

    from semsyn.cli.train import main

    args = ["spade-synthetic", "--out", str(tmp_path / "run"), *tiny_overrides("spade-synthetic")]
    with quiet_cpu():
        assert main([*args, "--set", "train.push_to_hub=org/trained"]) == 0
    final = semsyn.create_model(f"local-dir:{tmp_path / 'run' / 'final'}", pretrained=True)
    pulled = semsyn.create_model("hf-hub:org/trained", pretrained=True)
    label = torch.arange(64 * 64).reshape(1, 64, 64) % 10
    assert torch.equal(pulled.synthesize(label, seed=0), final.synthesize(label, seed=0))
