"""The trainer's EvalHook (numbers in metrics.jsonl) and the synthetic-hard data the quality benchmark ranks on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_support import quiet_cpu, tiny_overrides

import semsyn
from semsyn.data.synthetic import HARD_NUM_CLASSES, SyntheticHardScenes, SyntheticScenes


def test_eval_hook_numbers_land_in_metrics_jsonl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from semsyn.cli.train import main

    monkeypatch.setenv("SEMSYN_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    extra = {
        "train.steps": 4,
        "train.eval_every": 2,
        "train.eval_num": 4,
        "train.eval_batch_size": 4,
        "train.eval_metrics": ["miou", "segmenter-fd"],
        "train.eval_segmenter_params": {"train_steps": 2, "train_images": 8, "width": 4},
    }
    with quiet_cpu():
        assert main(["spade-synthetic", "--out", str(run), *tiny_overrides("spade-synthetic", **extra)]) == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [x for x in lines if "eval/miou" in x]
    assert [x["step"] for x in evals] == [2, 4]
    for line in evals:
        assert 0.0 <= line["eval/miou"] <= 1.0 and line["eval/segmenter_fd"] > 0
    # the segmenter was trained once for the run, not once per evaluation
    assert len(list((tmp_path / "cache" / "segmenters").glob("*.safetensors"))) == 1


def test_synthetic_hard_splits_each_class_by_texture_only() -> None:
    from semsyn.data.synthetic import HARD_SCHEMA

    hard = SyntheticHardScenes(labels=HARD_SCHEMA, length=40, split="val")
    labels = torch.cat([hard[i]["label"].flatten() for i in range(40)])
    assert labels.max() < HARD_NUM_CLASSES and (labels % 2 == 1).any() and (labels % 2 == 0).any()
    # a hard scene is the synthetic scene of the same draw plus zero-mean stripes on its patterned regions only
    from semsyn.data.synthetic import render_sample

    for i in range(3):
        base, base_label, _ = render_sample(hard.rng(i), (64, 64))
        image, label = hard[i]["image"].numpy(), hard[i]["label"][0].numpy()
        assert np.array_equal(label // 2, base_label)
        stripes = image - base
        patterned = label % 2 == 1
        assert np.abs(stripes[:, ~patterned]).max() == 0
        if patterned.sum() > 200:
            assert abs(float(stripes[:, patterned].mean())) < 0.05 and float(stripes[:, patterned].std()) > 0.1
    assert np.array_equal(hard[3]["image"].numpy(), SyntheticHardScenes(length=40, split="val")[3]["image"].numpy())


def test_synthetic_hard_rejects_a_ten_class_schema() -> None:
    from semsyn.data.synthetic import SCHEMA

    with pytest.raises(semsyn.DatasetError, match="synthetic-hard dataset has 20 classes"):
        SyntheticHardScenes(labels=SCHEMA)
    assert len(SyntheticScenes(length=2)) == 2
