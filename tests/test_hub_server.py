"""Tests for the Hub-compatible test server, driven by the real ``huggingface_hub`` client."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

import semsyn
from semsyn.testing.hub_server import HubServer

REPO = "semsyn-test/tiny-model"
CONFIG = b'{"model": "spade", "channels": 8}\n'
# Starts like a safetensors file (little-endian header length), so the sample has NUL bytes => LFS.
WEIGHTS = (64).to_bytes(8, "little") + b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}  ' + bytes(16)


@pytest.fixture(autouse=True)
def _client_without_xet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The server speaks plain Git LFS; with Xet on, the client would upload through Xet instead.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubServer]:
    with HubServer(tmp_path / "hub") as server:
        yield server


@pytest.fixture
def api(hub: HubServer) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token="hf_test_token")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _commit(api: HfApi, files: dict[str, bytes], message: str = "update", revision: str | None = None) -> str:
    """Commits ``files`` with the real client and returns the new commit id."""
    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data) for path, data in files.items()]
    return api.create_commit(REPO, operations=operations, commit_message=message, revision=revision).oid


def _download(hub: HubServer, cache_dir: Path, filename: str, revision: str | None = None) -> bytes:
    path = hf_hub_download(REPO, filename, revision=revision, endpoint=hub.endpoint, cache_dir=cache_dir)
    return Path(path).read_bytes()


@pytest.fixture
def repo(api: HfApi) -> str:
    """A repo holding config.json (regular) and model.safetensors (LFS); returns its first commit id."""
    api.create_repo(REPO)
    return _commit(api, {"config.json": CONFIG, "model.safetensors": WEIGHTS}, "first")


def test_create_repo_returns_repo_url(api: HfApi, hub: HubServer) -> None:
    url = api.create_repo(REPO, private=True)

    assert url == f"{hub.endpoint}/{REPO}"
    assert api.model_info(REPO).private is True


def test_create_repo_twice_conflicts_unless_exist_ok(api: HfApi) -> None:
    api.create_repo(REPO)

    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_repo(REPO)
    assert excinfo.value.response.status_code == 409
    api.create_repo(REPO, exist_ok=True)


def test_upload_folder_sends_binary_files_through_lfs(
    api: HfApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "config.json").write_bytes(CONFIG)
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    api.create_repo(REPO)

    with caplog.at_level(logging.DEBUG, logger="semsyn.testing.hub_server"):
        api.upload_folder(repo_id=REPO, folder_path=folder, commit_message="weights")

    oid = hashlib.sha256(WEIGHTS).hexdigest()
    assert any(f"PUT /{REPO}.git/info/lfs/objects/upload/{oid}" in record.getMessage() for record in caplog.records)
    tree = {entry.path: entry for entry in api.list_repo_tree(REPO)}
    assert tree["model.safetensors"].lfs.sha256 == oid
    assert tree["config.json"].lfs is None


def test_upload_of_unchanged_file_is_skipped(api: HfApi, repo: str) -> None:
    assert _commit(api, {"config.json": CONFIG}, "same bytes again") == repo


def test_download_by_branch(hub: HubServer, repo: str, cache_dir: Path) -> None:
    assert _download(hub, cache_dir, "model.safetensors", revision="main") == WEIGHTS


def test_download_by_tag_after_main_moved_on(api: HfApi, hub: HubServer, repo: str, cache_dir: Path) -> None:
    api.create_tag(REPO, tag="v1.0", tag_message="first release")
    _commit(api, {"config.json": b"{}\n"}, "second")

    assert _download(hub, cache_dir, "config.json", revision="v1.0") == CONFIG


def test_download_by_commit_sha(hub: HubServer, repo: str, cache_dir: Path) -> None:
    assert _download(hub, cache_dir, "config.json", revision=repo) == CONFIG


def test_second_commit_keeps_first_commit_resolvable(api: HfApi, hub: HubServer, repo: str, cache_dir: Path) -> None:
    second = _commit(api, {"config.json": b'{"model": "cc-fpse"}\n'}, "second")

    assert second != repo
    assert _download(hub, cache_dir, "config.json", revision=repo) == CONFIG
    assert _download(hub, cache_dir, "config.json", revision=second) == b'{"model": "cc-fpse"}\n'


def test_list_repo_refs_reports_branches_and_tags(api: HfApi, repo: str) -> None:
    api.create_branch(REPO, branch="dev")
    api.create_tag(REPO, tag="v1.0")

    refs = api.list_repo_refs(REPO)

    assert {(ref.name, ref.target_commit) for ref in refs.branches} == {("main", repo), ("dev", repo)}
    assert [(ref.ref, ref.target_commit) for ref in refs.tags] == [("refs/tags/v1.0", repo)]


def test_commit_to_created_branch_leaves_main_alone(api: HfApi, hub: HubServer, repo: str, cache_dir: Path) -> None:
    api.create_branch(REPO, branch="dev")
    _commit(api, {"extra.txt": b"dev only\n"}, "on dev", revision="dev")

    assert api.file_exists(REPO, "extra.txt", revision="dev")
    assert not api.file_exists(REPO, "extra.txt", revision="main")


def test_list_repo_files_includes_nested_paths(api: HfApi, repo: str) -> None:
    _commit(api, {"nested/dir/notes.txt": b"hello\n"}, "nested")

    files = api.list_repo_files(REPO)

    assert sorted(files) == [".gitattributes", "config.json", "model.safetensors", "nested/dir/notes.txt"]


def test_model_info_reports_commit_sha_and_sizes(api: HfApi, repo: str) -> None:
    info = api.model_info(REPO, files_metadata=True)

    assert info.sha == repo
    sizes = {sibling.rfilename: sibling.size for sibling in info.siblings}
    assert sizes["model.safetensors"] == len(WEIGHTS)


def test_file_exists_is_false_for_missing_file(api: HfApi, repo: str) -> None:
    assert api.file_exists(REPO, "missing.bin") is False


def test_missing_repo_raises_repository_not_found(hub: HubServer, cache_dir: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        _download(hub, cache_dir, "config.json")


def test_missing_revision_raises_revision_not_found(hub: HubServer, repo: str, cache_dir: Path) -> None:
    with pytest.raises(RevisionNotFoundError):
        _download(hub, cache_dir, "config.json", revision="no-such-branch")


def test_missing_file_raises_entry_not_found(hub: HubServer, repo: str, cache_dir: Path) -> None:
    with pytest.raises(EntryNotFoundError):
        _download(hub, cache_dir, "missing.json")


def test_snapshot_download_fetches_every_file(hub: HubServer, repo: str, cache_dir: Path) -> None:
    folder = Path(snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=cache_dir))

    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (folder / "config.json").read_bytes() == CONFIG


def test_restart_on_same_directory_serves_same_data(tmp_path: Path, cache_dir: Path) -> None:
    with HubServer(tmp_path / "hub") as first:
        api = HfApi(endpoint=first.endpoint, token="hf_test_token")
        api.create_repo(REPO)
        commit = _commit(api, {"model.safetensors": WEIGHTS}, "first")
        api.create_tag(REPO, tag="v1.0")

    with HubServer(tmp_path / "hub") as second:
        assert _download(second, cache_dir, "model.safetensors", revision="v1.0") == WEIGHTS
        assert HfApi(endpoint=second.endpoint).model_info(REPO).sha == commit


def test_corrupt_file_makes_download_differ(hub: HubServer, repo: str, cache_dir: Path) -> None:
    hub.corrupt_file(REPO, "model.safetensors")

    downloaded = _download(hub, cache_dir, "model.safetensors")

    assert downloaded != WEIGHTS


def test_delete_repo_removes_it(api: HfApi, repo: str) -> None:
    api.delete_repo(REPO)

    assert api.repo_exists(REPO) is False


def test_lfs_put_with_wrong_bytes_is_rejected(api: HfApi, hub: HubServer, repo: str) -> None:
    # The client never sends mismatching bytes, so this one request is made by hand.
    oid = hashlib.sha256(b"expected").hexdigest()
    url = f"{hub.endpoint}/{REPO}.git/info/lfs/objects/upload/{oid}"
    request = urllib.request.Request(url, data=b"something else", method="PUT")

    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=5)
    assert excinfo.value.code == 400


def test_resolve_honours_range(hub: HubServer, repo: str) -> None:
    request = urllib.request.Request(f"{hub.endpoint}/{REPO}/resolve/main/model.safetensors")
    request.add_header("Range", "bytes=8-15")

    with urllib.request.urlopen(request, timeout=5) as response:
        assert (response.status, response.read()) == (206, WEIGHTS[8:16])


def test_cli_prints_endpoint_and_serves(tmp_path: Path) -> None:
    project_root = Path(semsyn.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(project_root), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "semsyn.testing.hub_server", str(tmp_path / "hub"), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        endpoint = process.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        HfApi(endpoint=endpoint, token="hf_test_token").create_repo(REPO)
        assert HfApi(endpoint=endpoint).repo_exists(REPO)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
