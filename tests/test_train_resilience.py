"""A run killed with SIGKILL at random moments resumes from its last complete checkpoint every time.

The run checkpoints every step, and `SEMSYN_TEST_CHECKPOINT_DELAY` makes each checkpoint write sleep
between its files and its marker, so most random kills land in the middle of a write. After every kill
no checkpoint folder is half-written, the newest one loads, the next `--resume` starts exactly there,
and the run finally ends with the very weights of an uninterrupted run.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from test_train_support import SUPPORT, quiet_cpu, register, tiny_spec, unregister

from semsyn.spec import Spec
from semsyn.training.hooks import CHECKPOINTS_DIR, DELAY_ENV, list_checkpoints, read_checkpoint
from semsyn.training.trainer import Trainer

STEPS = 24
KILLS = 4


def _spec() -> dict:
    data = tiny_spec(steps=STEPS, checkpoint_every=1, keep_checkpoints=2, ema_halflife_images=4)
    data["generator"]["z_dim"] = 2  # random draws in every step: the run's generator must resume too
    return data


def _lines(path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.mark.slow
def test_sigkill_at_random_moments_resumes_from_the_last_complete_checkpoint(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(_spec()))
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", DELAY_ENV: "0.15"}
    rnd = random.Random(1234)
    killed_mid_write = 0
    for attempt in range(KILLS + 1):
        latest = list_checkpoints(run)[-1][0] if list_checkpoints(run) else None
        args = ["--resume", str(run)] if attempt else [str(spec_file), "--out", str(run)]
        log = tmp_path / f"attempt{attempt}.log"
        with open(log, "w") as err:
            proc = subprocess.Popen(
                [sys.executable, str(SUPPORT), *args], env=env, stdout=subprocess.DEVNULL, stderr=err
            )
            if attempt < KILLS:
                start = _lines(run / "metrics.jsonl")
                while proc.poll() is None and _lines(run / "metrics.jsonl") <= start:
                    time.sleep(0.01)
                time.sleep(rnd.uniform(0.0, 0.25))
                proc.send_signal(signal.SIGKILL)
            code = proc.wait(timeout=120)
        text = log.read_text()
        if attempt and latest is not None:
            assert re.search(rf"resumed \S*step_{latest:06d} at step {latest}\b", text), text[-2000:]
        if attempt == KILLS:
            assert code == 0, text[-2000:]
            break
        assert code == -signal.SIGKILL, text[-2000:]
        folders = [p for p in (run / CHECKPOINTS_DIR).glob("step_*")]
        assert len(folders) == len(list_checkpoints(run)), "a step_* folder without a complete marker"
        read_checkpoint(list_checkpoints(run)[-1][1])
        killed_mid_write += any((run / CHECKPOINTS_DIR).glob(".tmp-step_*"))
    assert killed_mid_write >= 1, "no kill landed inside a checkpoint write"

    register()
    try:
        with quiet_cpu():
            straight = Trainer(Spec.from_dict(_spec()), tmp_path / "straight")
            straight.fit()
    finally:
        unregister()
    resumed = read_checkpoint(list_checkpoints(run)[-1][1])[0]
    expected = straight.weights()
    assert resumed.keys() == expected.keys()
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)
