"""The trainer: every synthetic spec trains through the CLI, exact resume, NaN stop, bad data, CLI errors, hooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from test_train_support import quiet_cpu, register, tiny_overrides, tiny_spec, unregister

import semsyn
from semsyn.cli.train import main
from semsyn.errors import CheckpointError, TrainingError
from semsyn.registry import NORMS
from semsyn.spec import Spec
from semsyn.training.distributed import CPUSyncBatchNorm, ShardedBatchSampler, convert_sync_batchnorm
from semsyn.training.ema import GeneratorEMA
from semsyn.training.hooks import latest_checkpoint, list_checkpoints, read_checkpoint, write_checkpoint
from semsyn.training.optim import LinearDecay, adam
from semsyn.training.trainer import Trainer


@pytest.fixture(scope="module", autouse=True)
def tiny_components():
    register()
    with quiet_cpu():
        yield
    unregister()


def write_spec(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", semsyn.list_models("*-synthetic"))
def test_every_synthetic_spec_trains_through_the_cli(name, tmp_path):
    run = tmp_path / "run"
    extra = {"train.sample_every": 2, "train.ema_halflife_images": 8}
    assert main([name, "--out", str(run), *tiny_overrides(name, **extra)]) == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    assert {"G/gan", "G/feature_matching", "D/gan_fake", "D/gan_real"} <= set(lines[-1])
    assert [s for s, _ in list_checkpoints(run)] == [2]
    assert (run / "samples" / "step_000002.png").is_file()
    final = semsyn.create_model(f"local-dir:{run / 'final'}", pretrained=True, with_discriminator=True)
    weights = read_checkpoint(latest_checkpoint(run))[0]
    # The final folder holds the EMA generator.
    ema = {k[len("ema.") :]: v for k, v in weights.items() if k.startswith("ema.")}
    assert all(torch.equal(final.generator.state_dict()[k], v) for k, v in ema.items())


def full_featured_spec() -> dict:
    """Encoder + KL, spectral norm, syncbatch, EMA, accumulation, 2 D steps (one reusing the G phase's fakes,
    one regenerating), LR decay from step 1."""
    data = tiny_spec(
        steps=4,
        batch_size=4,
        grad_accum_steps=2,
        d_steps_per_g=2,
        lr_decay_start_step=1,
        ema_halflife_images=6,
        checkpoint_every=2,
        lr_g=1e-3,
        lr_d=2e-3,
        d_fake="reuse",
    )
    data["generator"].update(z_dim=4, norm="syncbatch", spectral_norm=True)
    data["encoder"] = {"name": "test-tiny-enc", "z_dim": 4}
    data["losses"]["kl"] = {"name": "test-kl", "weight": 0.05}
    return data


def spade_spec() -> dict:
    spec = semsyn.load_spec(
        "spade-synthetic",
        overrides=[
            o
            for o in tiny_overrides(
                "spade-synthetic",
                **{
                    "image_size": [32, 32],
                    "train.steps": 4,
                    "train.checkpoint_every": 2,
                    "train.lr_decay_start_step": 2,
                    "train.ema_halflife_images": 4,
                },
            )
            if o != "--set"
        ],
    )
    return spec.to_dict()


def _states(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = dict(trainer.weights())
    for name, opt in trainer.optimizers.items():
        for i, state in opt.state_dict()["state"].items():
            out.update({f"opt.{name}.{i}.{k}": torch.as_tensor(v) for k, v in state.items()})
    return out


@pytest.mark.parametrize("make_spec", [full_featured_spec, spade_spec], ids=["tiny-all-features", "spade"])
def test_resume_is_exact(make_spec, tmp_path):
    spec = Spec.from_dict(make_spec())
    straight = Trainer(spec, tmp_path / "straight")
    straight.fit()
    first = Trainer(spec, tmp_path / "resumed")
    first.fit(stop_at=2)
    resumed = Trainer(spec, tmp_path / "resumed", resume=True)
    assert resumed.step == 2
    resumed.fit()
    a, b = _states(straight), _states(resumed)
    assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"differ after resume: {different[:5]}"
    logs = [
        [
            {k: v for k, v in json.loads(x).items() if k != "images_per_s"}
            for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        ]
        for run in ("straight", "resumed")
    ]
    assert logs[0] == logs[1]


def test_nan_loss_stops_naming_step_and_term(tmp_path):
    data = tiny_spec(steps=6, checkpoint_every=1)
    data["losses"]["boom"] = {"name": "test-nan-after", "after_calls": 2}
    trainer = Trainer(Spec.from_dict(data), tmp_path / "run")
    with pytest.raises(TrainingError, match=r"step 3: term 'G/boom' = nan"):
        trainer.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [1, 2]
    read_checkpoint(latest_checkpoint(tmp_path / "run"))  # the last good one loads


def test_kl_term_is_skipped_without_an_encoder(tmp_path):
    data = tiny_spec(steps=1)
    data["losses"]["kl"] = {"name": "test-kl", "weight": 0.05}
    trainer = Trainer(Spec.from_dict(data), tmp_path / "run")
    trainer.fit()
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert "G/gan" in line and "G/kl" not in line


def test_cli_bad_spec_exits_2_with_one_line(tmp_path, capsys):
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec())
    assert main([str(spec), "--out", str(tmp_path / "run"), "--set", "train.stepz=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stepz" in err and "steps" in err


def test_cli_resume_refuses_a_different_spec(tmp_path, capsys):
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(steps=1))
    assert main([str(spec), "--out", str(tmp_path / "run")]) == 0
    other = tiny_spec()
    other["generator"]["ngf"] = 8
    assert main([str(write_spec(tmp_path / "other.yaml", other)), "--resume", str(tmp_path / "run")]) == 2
    assert "differs from the spec of the run" in capsys.readouterr().err


def test_fresh_run_into_an_existing_run_is_refused(tmp_path):
    spec = Spec.from_dict(tiny_spec(steps=1))
    Trainer(spec, tmp_path / "run").fit()
    with pytest.raises(TrainingError, match="already holds a run.*--resume"):
        Trainer(spec, tmp_path / "run")


def test_cli_resume_lengthens_a_finished_run(tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(steps=2))
    assert main([str(spec), "--out", str(tmp_path / "run")]) == 0
    assert main(["--resume", str(tmp_path / "run"), "--set", "train.steps=3"]) == 0
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [2, 3]


# -- bad data: a tiny folder dataset ------------------------------------------------------------------
def folder_tree(root: Path, *, bad_value: bool = False, missing_label: bool = False, small_label: bool = False):
    from PIL import Image

    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True)
    for i, stem in enumerate(("a", "b", "c")):
        Image.new("RGB", (16, 16), (40 * i, 80, 120)).save(root / "images" / f"{stem}.png")
        label = torch.full((16, 16), i % 3, dtype=torch.uint8)
        if stem == "b" and bad_value:
            label[3, 4] = 7
        if stem == "b" and small_label:
            label = label[:8, :8]
        if not (stem == "b" and missing_label):
            Image.fromarray(label.numpy(), mode="L").save(root / "labels" / f"{stem}.png")


@pytest.mark.parametrize("fault", ["bad_value", "missing_label", "small_label"])
def test_bad_data_stops_with_one_line_naming_the_file(fault, tmp_path, capsys):
    folder_tree(tmp_path / "data", **{fault: True})
    data = tiny_spec(steps=3, batch_size=3)
    data["labels"] = {"num_classes": 3, "dontcare": False, "instance_edges": False}
    data["data"] = {"name": "folder", "root": str(tmp_path / "data"), "preprocess": "none", "flip": False}
    spec = write_spec(tmp_path / "spec.yaml", data)
    assert main([str(spec), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "b.png" in err, err


def test_label_outside_schema_names_the_file(tmp_path):
    data = tiny_spec(steps=2, batch_size=8)
    data["data"]["bad_index"] = 5
    with pytest.raises(semsyn.LabelError, match=r"tiny/005\.png holds value 43"):
        Trainer(Spec.from_dict(data), tmp_path / "run").fit()


# -- pieces ---------------------------------------------------------------------------------------------
def test_sharded_sampler_splits_the_single_process_batch_and_resumes():
    single = ShardedBatchSampler(10, 4, seed=3)
    ranks = [ShardedBatchSampler(10, 4, world_size=2, rank=r, accum=2, seed=3) for r in range(2)]
    it, its = iter(single), [iter(s) for s in ranks]
    for _ in range(5):  # crosses epochs
        assert next(it) == next(its[0]) + next(its[0]) + next(its[1]) + next(its[1])
    later = iter(ShardedBatchSampler(10, 4, seed=3, samples_seen=20))
    assert next(later) == next(it)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_syncbatch_conversion_touches_only_syncbatch_and_keeps_keys(device):
    net = torch.nn.Sequential(NORMS.get("syncbatch")(4), NORMS.get("batch")(4))
    keys = list(net.state_dict())
    assert convert_sync_batchnorm(net, NORMS.get("syncbatch"), torch.device(device)) == 1
    expected = CPUSyncBatchNorm if device == "cpu" else torch.nn.SyncBatchNorm
    assert type(net[0]) is expected and type(net[1]) is NORMS.get("batch")
    assert list(net.state_dict()) == keys


def test_ema_moves_halfway_after_one_halflife():
    spec = Spec.from_dict(tiny_spec())
    from semsyn.builder import build_model

    gen = build_model(spec).generator
    ema = GeneratorEMA(spec, gen, halflife_images=8)
    before = gen.conv_0.weight.detach().clone()
    with torch.no_grad():
        gen.conv_0.weight.add_(1.0)
    ema.update(gen, images=8)
    torch.testing.assert_close(ema.module.conv_0.weight, before + 0.5)


def _batch_norms(module: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def test_ema_calibration_gives_the_average_its_own_batch_statistics():
    spec = semsyn.load_spec(
        "spade-synthetic", overrides=["generator.ngf=2", "generator.noise_injection=true", "generator.init_gain=0.02"]
    )
    from semsyn.builder import build_model

    torch.manual_seed(0)
    gen = build_model(spec).generator
    ema = GeneratorEMA(spec, gen, halflife_images=8)
    with torch.no_grad():
        for p in ema.module.parameters():
            p.mul_(1.5)  # an average whose activations differ from the trained weights'
    label = torch.randint(0, 10, (4, 1, 64, 64), generator=torch.Generator().manual_seed(0))
    sem = torch.zeros(4, 11, 64, 64).scatter_(1, label, 1.0)
    spectral_before = {k: v.clone() for k, v in ema.module.state_dict().items() if k.endswith(("_u", "_v"))}
    momenta = [m.momentum for m in _batch_norms(ema.module)]
    assert ema.calibrate_norms([(sem, None)], torch.Generator().manual_seed(1))
    # Calibrated on this one batch, eval mode normalises with this batch's statistics as train mode does, up
    # to the running variance's unbiased n / (n - 1) (n = 16 values per channel at 2x2); the copied did not.
    with torch.no_grad(), semsyn.inference.reference_path():
        evaluated = ema.module(sem, generator=torch.Generator().manual_seed(2))
        for m in _batch_norms(ema.module):
            m.train()
        batch_stats = ema.module(sem, generator=torch.Generator().manual_seed(2))
        ema.module.eval()
        ema.module.load_state_dict(
            gen.state_dict()
            | {k: v for k, v in ema.module.state_dict().items() if not k.endswith(("running_mean", "running_var"))}
        )
        copied = ema.module(sem, generator=torch.Generator().manual_seed(2))
    assert (evaluated - batch_stats).abs().max() < 0.25 * (copied - batch_stats).abs().max()
    assert [m.momentum for m in _batch_norms(ema.module)] == momenta and not ema.module.training
    assert all(torch.equal(ema.module.state_dict()[k], v) for k, v in spectral_before.items())
    instance = semsyn.load_spec("spade-synthetic", overrides=["generator.ngf=2", "generator.norm=instance"])
    assert not GeneratorEMA(instance, build_model(instance).generator, 8).calibrate_norms([(sem, None)], None)


def test_saved_ema_generator_carries_calibrated_statistics_and_training_is_unchanged(tmp_path):
    base = Spec.from_dict(spade_spec())

    def run(name: str, images: int) -> dict[str, torch.Tensor]:
        spec = base.with_overrides(
            [f"train.ema_calibration_images={images}", "train.steps=3", "train.ema_halflife_images=4"]
        )
        Trainer(spec, tmp_path / name).fit()
        return read_checkpoint(latest_checkpoint(tmp_path / name))[0]

    calibrated, copied = run("calibrated", 8), run("copied", 0)
    stats = [k for k in calibrated if k.startswith("ema.") and k.endswith("running_mean")]
    assert stats
    for key, value in calibrated.items():
        if key.startswith("ema.") and key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            trained = calibrated["generator." + key[len("ema.") :]]
            assert torch.equal(copied[key], trained) and not torch.equal(value, trained)
        else:  # training itself is the same with and without calibration
            assert torch.equal(value, copied[key]), key


def test_linear_decay_reaches_zero_at_the_end():
    decay = LinearDecay(start=5, total=10)
    assert [decay(s) for s in (0, 4, 5, 8, 10)] == [1.0, 1.0, 1.0, 0.4, 0.0]
    assert LinearDecay(start=10, total=10)(9) == 1.0


def test_adam_is_fused_on_cpu_and_steps_like_the_per_tensor_loop():
    torch.manual_seed(0)
    params = [torch.randn(37, requires_grad=True), torch.randn(3, 5, requires_grad=True)]
    start = [p.detach().clone() for p in params]
    loop_params = [p.detach().clone().requires_grad_() for p in params]
    fused = adam(params, 1e-2, (0, 0.9))  # integer beta1 as a YAML spec may give it
    loop = torch.optim.Adam(loop_params, lr=1e-2, betas=(0.0, 0.9), foreach=False)
    assert fused.defaults["fused"] is True and not loop.defaults["fused"]
    for _ in range(20):
        for p, q in zip(params, loop_params):
            p.grad = torch.rand_like(p) + 0.5  # one sign: every entry moves by about lr per step
            q.grad = p.grad.clone()
        fused.step()
        loop.step()
    for p, q, p0 in zip(params, loop_params, start):
        assert (p - p0).abs().min() > 1e-3  # every entry moved
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    # Parameters that fused Adam cannot update (here: on the meta device) get the per-tensor loop.
    assert not adam([torch.nn.Parameter(torch.empty(2, device="meta"))], 1e-3, (0.0, 0.9)).defaults["fused"]


def test_incomplete_checkpoints_are_never_loaded(tmp_path):
    write_checkpoint(tmp_path, 1, {"generator.w": torch.ones(2)}, {"step": 1})
    good = write_checkpoint(tmp_path, 2, {"generator.w": torch.ones(2)}, {"step": 2})
    (good.parent / "step_000003").mkdir()  # no marker: a half-written folder
    assert latest_checkpoint(tmp_path) == good
    with open(good / "state.pt", "ab") as fh:  # changed after the marker was written
        fh.write(b"x")
    assert latest_checkpoint(tmp_path).name == "step_000001"
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        read_checkpoint(good)


def test_push_to_hub_is_called_with_the_final_model(tmp_path, monkeypatch):
    pushed = []
    monkeypatch.setattr(
        semsyn.SynthesisModel,
        "push_to_hub",
        lambda self, repo_id, **kw: pushed.append((repo_id, self.generator)) or "abc123",
    )
    trainer = Trainer(
        Spec.from_dict(tiny_spec(steps=1, push_to_hub="me/tiny", ema_halflife_images=4)), tmp_path / "run"
    )
    trainer.fit()
    assert pushed == [("me/tiny", trainer.ema.module)]


def test_init_from_starts_from_the_given_weights(tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(steps=2))
    assert main([str(spec), "--out", str(tmp_path / "first")]) == 0
    source = semsyn.create_model(f"local-dir:{tmp_path / 'first' / 'final'}", pretrained=True, with_discriminator=True)
    trainer = Trainer(
        Spec.from_dict(tiny_spec(init_from=f"local-dir:{tmp_path / 'first' / 'final'}")), tmp_path / "second"
    )
    for part in ("generator", "discriminator"):
        mine, theirs = getattr(trainer, part).state_dict(), getattr(source, part).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


def test_sample_grid_shows_label_generated_real(tmp_path):
    from PIL import Image

    trainer = Trainer(Spec.from_dict(tiny_spec(steps=1, sample_every=1, sample_images=3)), tmp_path / "run")
    trainer.fit()
    with Image.open(tmp_path / "run" / "samples" / "step_000001.png") as image:
        assert image.size == (3 * 16, 3 * 16)
