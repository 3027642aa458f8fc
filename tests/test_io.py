"""The model-I/O layer: one resolver, commit-pinned Hub folders, provenance-true cards, shareable files.

Hub tests talk HTTP to semsyn.testing.hub_server on 127.0.0.1 through the real huggingface_hub client.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from test_hub import LABEL, tiny_model
from test_train_support import quiet_cpu, tiny_overrides

import semsyn
import semsyn.hub
import semsyn.resolve
from semsyn.errors import HubError
from semsyn.provenance import METADATA_KEY, Provenance
from semsyn.testing.hub_server import HubServer


def hub_card(server: HubServer, repo_id: str, tmp_path: Path) -> tuple[dict, str]:
    """(metadata, text) of a repo's README.md, fetched fresh."""
    from huggingface_hub import ModelCard, hf_hub_download

    path = hf_hub_download(repo_id, "README.md", endpoint=server.endpoint, cache_dir=tmp_path / f"card-{os.getpid()}")
    text = Path(path).read_text()
    return ModelCard(text).data.to_dict(), text


def stored_provenance(folder: Path) -> Provenance:
    from semsyn.checkpoint import read_metadata

    return Provenance.from_json(read_metadata(folder / "model.safetensors")[METADATA_KEY])


# -- the four cards ---------------------------------------------------------------------------------
def test_random_init_card_claims_no_official_origin_or_licence(hub: HubServer, tmp_path: Path) -> None:
    model = semsyn.create_model("spade-coco", generator={"ngf": 1})
    model.push_to_hub("org/random")
    meta, text = hub_card(hub, "org/random", tmp_path)
    assert "kind: random-init" in text and 'create_model("hf-hub:org/random", pretrained=True)' in text
    assert "NVlabs" not in text and "official" not in text.lower() and "PATH_TO_THIS_FOLDER" not in text
    assert meta["license"] == "other" and meta["license_name"] == "not-specified"
    assert "ngf=1" in text  # the description comes from the real widths


def test_trained_card_says_trained_from_scratch(hub: HubServer, tmp_path: Path) -> None:
    from semsyn.cli.train import main

    args = ["spade-synthetic", "--out", str(tmp_path / "run"), *tiny_overrides("spade-synthetic")]
    with quiet_cpu():
        assert main([*args, "--set", "train.push_to_hub=org/trained"]) == 0
    meta, text = hub_card(hub, "org/trained", tmp_path)
    assert "kind: trained" in text and "2 steps on synthetic" in text and meta["license"] == "other"
    assert stored_provenance(tmp_path / "run" / "final").kind == "trained"
    local = (tmp_path / "run" / "final" / "README.md").read_text()
    assert f'create_model("local-dir:{(tmp_path / "run" / "final").resolve()}"' in local


@pytest.fixture
def official_run(official, tmp_path: Path) -> Path:
    from test_convert_cli import write_opt_txt

    src = official("spade_generator")
    folder = tmp_path / "official_run"
    folder.mkdir()
    shutil.copy(src / "checkpoint.pth", folder / "latest_net_G.pth")
    write_opt_txt(json.loads((src / "opt.json").read_text()), folder / "opt.txt")
    return folder


def _convert(run: Path, out: Path, *extra: str) -> None:
    from semsyn.cli.convert import main

    assert main(["official", str(run), "--out", str(out), "--name", "spade-fixture", *extra]) == 0


def test_converted_official_card_records_origin_licence_and_hashes(
    hub: HubServer, official_run: Path, tmp_path: Path
) -> None:
    from semsyn.checkpoint import file_sha256

    origin = ["--origin", "NVlabs/SPADE official test fixture", "--license", "CC-BY-NC-SA-4.0"]
    _convert(official_run, tmp_path / "conv", *origin, "--push-to-hub", "org/converted")
    meta, text = hub_card(hub, "org/converted", tmp_path)
    assert "kind: converted-official" in text and "NVlabs/SPADE official test fixture" in text
    assert meta["license"] == "cc-by-nc-sa-4.0"
    assert file_sha256(official_run / "latest_net_G.pth") in text
    assert 'create_model("hf-hub:org/converted", pretrained=True)' in text


def test_conversion_without_origin_never_says_trained_with_semsyn(official_run: Path, tmp_path: Path) -> None:
    _convert(official_run, tmp_path / "conv")
    record = stored_provenance(tmp_path / "conv")
    assert record.kind == "converted-official" and "official spade checkpoint" in record.origin
    assert "trained" not in (tmp_path / "conv" / "README.md").read_text().split("## Provenance")[1].split("##")[0]


def _six_class_dataset():
    """A registered dataset of random 6-class scenes (the fixture's schema), unregistered by the caller."""

    @semsyn.DATASETS.register("test-io-six")
    class SixClasses(torch.utils.data.Dataset):
        def __init__(self, labels: semsyn.LabelSchema, image_size: tuple[int, int], length: int = 4) -> None:
            self.labels, self.size, self.length = labels, tuple(image_size), length

        def __len__(self) -> int:
            return self.length

        def __getitem__(self, index: int) -> dict:
            g = torch.Generator().manual_seed(index)
            label = torch.randint(0, self.labels.num_classes, (1, *self.size), generator=g)
            return {"label": label, "image": torch.rand(3, *self.size, generator=g) * 2 - 1}

    return SixClasses


def test_fine_tuned_converted_card_names_its_parent_and_keeps_its_licence(
    hub: HubServer, official_run: Path, tmp_path: Path
) -> None:
    from semsyn.cli.train import main

    _convert(official_run, tmp_path / "conv", "--license", "CC-BY-NC-SA-4.0", "--push-to-hub", "org/conv")
    spec = tmp_path / "ft.yaml"
    spec.write_text(
        f"base: {tmp_path / 'conv' / 'spec.yaml'}\nname: spade-fixture-ft\n"
        "discriminator: {name: patchgan-multiscale, ndf: 4, n_layers: 2, num_d: 1}\n"
        "losses: {gan: {name: hinge}}\ndata: {name: test-io-six, length: 4}\n"
        "train: {steps: 1, batch_size: 2, device: cpu, log_every: 1, init_from: 'hf-hub:org/conv', "
        "push_to_hub: org/finetuned}\n"
    )
    _six_class_dataset()
    try:
        with quiet_cpu():
            assert main([str(spec), "--out", str(tmp_path / "run")]) == 0
    finally:
        semsyn.DATASETS.unregister("test-io-six")
    meta, text = hub_card(hub, "org/finetuned", tmp_path)
    assert "kind: fine-tuned" in text and "hf-hub:org/conv@" in text and "converted-official" in text
    assert meta["license"] == "cc-by-nc-sa-4.0" and meta["base_model"] == "org/conv"
    record = stored_provenance(tmp_path / "run" / "final")
    assert record.parent["kind"] == "converted-official" and record.steps == 1


def test_random_parts_are_named_untrained_and_weights_without_trained_parts_are_random(tmp_path: Path) -> None:
    model = tiny_model(tmp_path, 0)
    record = Provenance(kind="converted-official", origin="official", license="CC-BY-NC-SA-4.0", parts=["generator"])
    model.provenance = record
    model.save_pretrained(tmp_path / "untrained")  # nothing in the model was loaded: all random
    assert stored_provenance(tmp_path / "untrained").kind == "random-init"
    assert "CC-BY-NC-SA" not in (tmp_path / "untrained" / "README.md").read_text()


# -- one resolver, one commit -------------------------------------------------------------------------
def test_spec_and_weights_come_from_one_commit_when_a_push_lands_between_fetches(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tiny_model(tmp_path, 1)
    first.push_to_hub("org/race")
    wider = semsyn.create_model(str(tmp_path / "tiny.yaml"), generator={"ngf": 4})
    real_download = semsyn.hub.download_file
    pushed = []

    def download_then_push(repo_id: str, filename: str, *args, **kwargs):
        path = real_download(repo_id, filename, *args, **kwargs)
        if filename == "spec.yaml" and not pushed:
            pushed.append(wider.push_to_hub("org/race"))  # lands between the spec and the weights
        return path

    monkeypatch.setattr(semsyn.hub, "download_file", download_then_push)
    loaded = semsyn.create_model("hf-hub:org/race", pretrained=True)
    assert pushed and loaded.spec.data["generator"]["ngf"] == 2
    assert torch.equal(loaded.synthesize(LABEL, seed=0), first.synthesize(LABEL, seed=0))
    assert semsyn.create_model("hf-hub:org/race", pretrained=True).spec.data["generator"]["ngf"] == 4


def test_unpublished_named_model_fails_at_once_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(semsyn.hub, "download_file", no_network)
    monkeypatch.setattr(semsyn.hub, "pin_revision", no_network)
    with pytest.raises(
        HubError,
        match=r"no semsyn weights are published for 'spade-coco'.*official checkpoint.*semsyn-convert official "
        r".*--push-to-hub ORG/NAME.*create_model\(\"hf-hub:ORG/NAME\", pretrained=True\)",
    ):
        semsyn.create_model("spade-coco", pretrained=True)
    with pytest.raises(HubError, match=r"no official checkpoint of it exists.*semsyn-train spade-synthetic"):
        semsyn.create_model("spade-synthetic", pretrained=True)


def test_list_models_pretrained_lists_only_published_names() -> None:
    assert semsyn.list_models(pretrained=True) == [
        n for n in semsyn.list_models() if semsyn.load_spec(n).pretrained.get("published")
    ]
    assert "spade-coco" not in semsyn.list_models(pretrained=True)


def test_resolve_a_run_folder_and_from_pretrained(tmp_path: Path) -> None:
    from semsyn.cli.train import main

    run = tmp_path / "run"
    with quiet_cpu():
        assert main(["spade-synthetic", "--out", str(run), *tiny_overrides("spade-synthetic")]) == 0
    folder = semsyn.resolve(str(run))
    assert folder.weights_file == run / "final" / "model.safetensors"
    model = semsyn.SynthesisModel.from_pretrained(str(run))
    assert model.provenance.kind == "trained" and model.trained_parts == {"generator"}
    shutil.rmtree(run / "final")  # a run without final/: its newest checkpoint, the EMA-less generator
    from_checkpoint = semsyn.create_model(str(run), pretrained=True)
    label = torch.arange(64 * 64).reshape(1, 64, 64) % 10
    assert torch.equal(from_checkpoint.synthesize(label, seed=0), model.synthesize(label, seed=0))


def test_saved_files_follow_the_umask_not_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        folder = tiny_model(tmp_path, 0).save_pretrained(tmp_path / "shared")
    finally:
        os.umask(old)
    for name in ("model.safetensors", "spec.yaml", "README.md"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name


def test_load_spec_of_a_hub_repo(hub: HubServer, tmp_path: Path) -> None:
    tiny_model(tmp_path, 0).push_to_hub("org/spec-only")
    assert semsyn.load_spec("hf-hub:org/spec-only").data["generator"]["ngf"] == 2


def test_weights_without_a_record_are_of_unknown_origin_never_official(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = tiny_model(tmp_path, 0).save_pretrained(tmp_path / "old")
    save_file(load_file(folder / "model.safetensors"), str(folder / "model.safetensors"))  # as before records
    loaded = semsyn.create_model(f"local-dir:{folder}", pretrained=True)
    assert loaded.provenance.kind == "unknown"
    text = (loaded.save_pretrained(tmp_path / "again") / "README.md").read_text()
    assert "kind: unknown" in text and "license_name: not-specified" in text
