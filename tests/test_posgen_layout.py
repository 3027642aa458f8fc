"""PosGen keeps the layout when it renders at 2x and 4x of its label map.

A tiny PosGen is fitted for 80 steps (L1 regression, a few CPU seconds) to paint each class of the synthetic
label maps in its palette colour at 64x64; held-out maps are then rendered at 1x, 2x, 4x and 2x4x. Labels are
recovered from each render by nearest palette colour and compared with the input map nearest-upsampled to
the render's size. The fit reaches ~80% at 1x; the larger renders must agree as well as the 1x one does.
(The GAN-trained posgen-synthetic's figures are in docs/posgen.md, recovered from per-class mean colours.)
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_train_support import quiet_cpu

from semsyn import GENERATORS
from semsyn.data.synthetic import PALETTE, SCHEMA, SyntheticScenes
from semsyn.labels import semantics

SIZE = 64
PALETTE_RGB = torch.tensor(PALETTE, dtype=torch.float32) / 127.5 - 1


@pytest.fixture(scope="module", autouse=True)
def _one_cpu_thread():
    with quiet_cpu():  # tiny convs lose 10-50x on a second thread when the cores are shared
        yield


def _maps(n: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = SyntheticScenes(image_size=(SIZE, SIZE), length=n, split=split)
    items = [data[i] for i in range(n)]
    label = torch.stack([it["label"][0] for it in items])
    return label, semantics(label, SCHEMA, torch.stack([it["instance"][0] for it in items]))


def _fitted_posgen() -> torch.nn.Module:
    torch.manual_seed(0)
    gen = GENERATORS.get("posgen")(
        label_channels=SCHEMA.label_channels,
        image_size=(SIZE, SIZE),
        ngf=4,
        norm="batch",
        spectral_norm=False,
        cond_norm_params={"hidden_channels": 8},
        fourier_features=16,
        decoder_channels=32,
        decoder_layers=2,
    )
    label, sem = _maps(32, "train")
    target = PALETTE_RGB[label].permute(0, 3, 1, 2)
    opt = torch.optim.Adam(gen.parameters(), lr=5e-3)
    order = torch.randint(0, 32, (80, 4), generator=torch.Generator().manual_seed(0))
    for batch in order:
        loss = (gen(sem[batch]) - target[batch]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return gen.eval()


def _recovered(image: torch.Tensor) -> torch.Tensor:
    """Nearest palette colour of every pixel: (N, 3, H, W) -> (N, H, W) class ids."""
    return (
        torch.cdist(image.permute(0, 2, 3, 1).flatten(1, 2), PALETTE_RGB[None])
        .argmin(-1)
        .view(image.shape[0], *image.shape[2:])
    )


def test_renders_at_2x_and_4x_keep_the_layout():
    gen = _fitted_posgen()
    label, sem = _maps(8, "val")
    agreement = {}
    with torch.no_grad():
        for scale in ((1, 1), (2, 2), (4, 4), (2, 4)):
            size = (SIZE * scale[0], SIZE * scale[1])
            upsampled = F.interpolate(label[:, None].float(), size=size, mode="nearest")[:, 0].long()
            agreement[scale] = (_recovered(gen(sem, size=size)) == upsampled).float().mean().item()
    assert agreement[(1, 1)] > 0.6, agreement  # painting the commonest class everywhere scores 0.32
    for scale in ((2, 2), (4, 4), (2, 4)):
        assert agreement[scale] > agreement[(1, 1)] - 0.02, agreement
