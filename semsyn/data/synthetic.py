"""A procedural dataset of outdoor scenes that needs no files: the demo's default and the benchmarks' truth.

Every sample is a pure function of (seed, split, index): a numpy `Generator` seeded from those numbers
draws a layout (sky above a wavy horizon, a mountain ridge on it, bands of water / sand / grass / snow
below, perhaps a road running to a vanishing point, then clouds, trees, rocks and snow patches as
blobs, nearer ones painted over farther ones) and renders an image from it with per-class colours and
textures that vary per sample (lighting, tint, noise scales), so a style encoder has something to learn
while a segmenter can still tell the classes apart. No global RNG is touched; everything is vectorised
numpy (no per-pixel Python loops).

The schema is fixed: 10 classes in `CLASS_NAMES` order, no dontcare, instance maps where every blob has
its own id and every stuff class one id. A matching spec says
``labels: {num_classes: 10, dontcare: false, instance_edges: true, names: synthetic}``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from semsyn.errors import DatasetError
from semsyn.labels import LabelSchema
from semsyn.namings import SYNTHETIC
from semsyn.registry import DATASETS

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "PALETTE",
    "SCHEMA",
    "SyntheticScenes",
    "render_sample",
    "HARD_CLASS_NAMES",
    "HARD_PALETTE",
    "SyntheticHardScenes",
]

CLASS_NAMES: tuple[str, ...] = tuple(name for name, _ in SYNTHETIC)
NUM_CLASSES = len(CLASS_NAMES)
SKY, CLOUD, MOUNTAIN, WATER, GRASS, TREE, ROCK, SAND, ROAD, SNOW = range(NUM_CLASSES)
SCHEMA = LabelSchema(num_classes=NUM_CLASSES, dontcare=False, instance_edges=True, names="synthetic")

# The classes' mean colours: the renderer's base colours and the palette of colourised label maps.
PALETTE: tuple[tuple[int, int, int], ...] = tuple(colour for _, colour in SYNTHETIC)
_BASE = np.asarray(PALETTE, dtype=np.float32) / 255.0
# Per-class texture amplitudes: white noise, coarse value noise, gradient away from the horizon,
# horizontal ripples, chroma noise. Scaled per sample by factors in [0.6, 1.4].
_TEXTURE = np.asarray(
    [
        [0.004, 0.03, 0.45, 0.00, 0.02],  # sky: lighter towards the horizon
        [0.010, 0.10, 0.00, 0.00, 0.01],  # cloud: soft lumps
        [0.030, 0.10, 0.25, 0.00, 0.04],  # mountain: hazier at the base
        [0.020, 0.04, -0.20, 0.07, 0.03],  # water: ripples, darker near the viewer
        [0.080, 0.07, -0.10, 0.00, 0.06],  # grass: grainy
        [0.070, 0.12, 0.00, 0.00, 0.05],  # tree: leafy lumps
        [0.070, 0.12, 0.00, 0.00, 0.02],  # rock: rough
        [0.045, 0.05, 0.00, 0.03, 0.03],  # sand: fine grain, dunes
        [0.030, 0.02, 0.00, 0.00, 0.00],  # road: smooth asphalt
        [0.015, 0.04, 0.00, 0.00, 0.01],  # snow: bright, nearly flat
    ],
    dtype=np.float32,
)
_GROUND_POOL = np.array([WATER, SAND, GRASS, SNOW])
_GROUND_WEIGHTS = np.array([0.3, 0.2, 0.4, 0.1])
_TREE_GROUND = np.zeros(NUM_CLASSES, dtype=bool)
_TREE_GROUND[[GRASS, SAND, SNOW, MOUNTAIN, ROCK, TREE]] = True
_PATCH_GROUND = np.zeros(NUM_CLASSES, dtype=bool)
_PATCH_GROUND[[GRASS, SAND, ROCK]] = True
_SKY_ONLY = np.zeros(NUM_CLASSES, dtype=bool)
_SKY_ONLY[SKY] = True


# -- noise and coordinates -------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in units of the image height: ys (H, 1) in [0, 1], xs (1, W) in [0, W / H]."""
    ys = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
    xs = ((np.arange(width, dtype=np.float32) + 0.5) / height)[None, :]
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs


@lru_cache(maxsize=256)
def _interp(n: int, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothstep interpolation from a lattice of `cells` + 1 points onto n pixels: (index, 1 - w, w)."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n * cells
    index = np.minimum(t.astype(np.int64), cells - 1)
    w = t - index
    w = (w * w * (3.0 - 2.0 * w)).astype(np.float32)
    out = (index, 1.0 - w, w)
    for a in out:
        a.flags.writeable = False
    return out


def _value_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Smooth noise (H, W), about unit variance at lattice points, `cells` cells along the height.

    Interpolated with gathers rather than a matrix product: BLAS threads stall on a busy machine.
    """
    cells_x = max(1, round(cells * width / height))
    lattice = rng.standard_normal((cells + 1, cells_x + 1), dtype=np.float32)
    iy, wy0, wy1 = _interp(height, cells)
    ix, wx0, wx1 = _interp(width, cells_x)
    rows = lattice[iy] * wy0[:, None] + lattice[iy + 1] * wy1[:, None]
    return np.take(rows, ix, axis=1) * wx0 + np.take(rows, ix + 1, axis=1) * wx1


def _waves(rng: np.random.Generator, xs: np.ndarray, count: int, freq: tuple[float, float]) -> np.ndarray:
    """A sum of `count` random sines over xs (1, W), amplitudes falling with frequency, in about [-1, 1]."""
    amps = rng.uniform(0.4, 1.0, count) / np.arange(1, count + 1)
    freqs = rng.uniform(*freq, count) * np.arange(1, count + 1)
    phases = rng.uniform(0.0, 2 * np.pi, count)
    out = (amps[:, None, None] * np.sin(freqs[:, None, None] * xs + phases[:, None, None])).sum(0)
    return (out / amps.sum()).astype(np.float32)


# -- layout ----------------------------------------------------------------------------------------


def _stuff(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, float]:
    """Sky, mountains, ground bands and a road: the stuff label map (H, W) uint8 and the horizon height."""
    aspect = xs.shape[1] / ys.shape[0]
    h0 = float(rng.uniform(0.3, 0.6))
    horizon = h0 + float(rng.uniform(-0.06, 0.06)) * (xs - aspect / 2)
    below = ys >= horizon
    label = np.full((ys.shape[0], xs.shape[1]), SKY, dtype=np.uint8)

    count = int(rng.integers(1, 4))
    # Weighted draw without replacement (Efraimidis-Spirakis keys): cheaper than Generator.choice.
    picked = np.sort(np.argsort(-(rng.random(len(_GROUND_POOL)) ** (1.0 / _GROUND_WEIGHTS)))[:count])
    bands = _GROUND_POOL[picked]  # pool order: water meets the horizon, grass lies nearest the viewer
    label[below] = bands[0]
    depths = np.sort(rng.uniform(0.1, 0.9, count - 1))
    for cls, depth in zip(bands[1:], depths):
        edge = h0 + (1 - h0) * depth + 0.04 * _waves(rng, xs, 2, (3.0, 9.0))
        label[below & (ys > edge)] = cls

    if rng.random() < 0.65:
        height = float(rng.uniform(0.1, 0.4))
        profile = _waves(rng, xs, 3, (2.0, 6.0)) * 0.5 + 0.5
        ridge = horizon - height * (0.2 + 0.8 * profile)
        rock_face = (ys >= ridge) & ~below
        label[rock_face] = MOUNTAIN
        if rng.random() < 0.5:
            cap = ridge + height * float(rng.uniform(0.15, 0.4)) * (1.0 + 0.5 * _waves(rng, xs, 2, (8.0, 20.0)))
            label[rock_face & (ys < cap) & (profile > 0.45)] = SNOW

    if rng.random() < 0.45:
        vanish, bottom = rng.uniform(0.25, 0.75) * aspect, rng.uniform(0.1, 0.9) * aspect
        half_width = float(rng.uniform(0.12, 0.4))
        t = np.clip((ys - h0) / (1 - h0), 0.0, None)
        centre = vanish + (bottom - vanish) * t
        label[below & (np.abs(xs - centre) < half_width * t)] = ROAD
    return label, h0


def _paint(
    label: np.ndarray,
    instance: np.ndarray,
    jitter: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    blob: tuple[float, float, float, float],
    cls: int,
    iid: int,
    allowed: np.ndarray | None,
    upper_half: bool,
) -> None:
    """Paint one ragged ellipse (cx, cy, rx, ry in height units) into the maps, inside its bounding box."""
    cx, cy, rx, ry = blob
    height = ys.shape[0]
    y0, y1 = max(0, int((cy - 1.3 * ry) * height)), min(height, int((cy + 1.3 * ry) * height) + 1)
    x0, x1 = max(0, int((cx - 1.3 * rx) * height)), min(xs.shape[1], int((cx + 1.3 * rx) * height) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    dy = (ys[y0:y1] - cy) / ry
    dx = (xs[:, x0:x1] - cx) / rx
    mask = dy * dy + dx * dx + 0.3 * jitter[y0:y1, x0:x1] < 1.0
    if upper_half:
        mask &= dy <= 0.0
    box = label[y0:y1, x0:x1]
    if allowed is not None:
        mask &= allowed[box]
    box[mask] = cls
    instance[y0:y1, x0:x1][mask] = iid


def _blobs(
    rng: np.random.Generator, label: np.ndarray, instance: np.ndarray, h0: float, ys: np.ndarray, xs: np.ndarray
) -> None:
    """Clouds in the sky, then trees, rocks and snow patches from far to near; each blob its own id."""
    height, width = label.shape
    aspect = width / height
    jitter = _value_noise(rng, height, width, 8)
    next_id = NUM_CLASSES + 1  # stuff classes own ids 1..NUM_CLASSES

    for _ in range(int(rng.choice(5, p=[0.15, 0.3, 0.25, 0.2, 0.1]))):
        cx, cy = rng.uniform(-0.1, aspect + 0.1), rng.uniform(0.03, 0.85 * h0)
        rx = float(rng.uniform(0.05, 0.18))
        for dx, scale in zip(rng.uniform(-0.7, 0.7, 3) * rx, rng.uniform(0.5, 1.0, 3)):
            blob = (cx + dx, cy + rng.uniform(-0.3, 0.1) * rx, rx * scale, rx * scale * rng.uniform(0.35, 0.6))
            _paint(label, instance, jitter, ys, xs, blob, CLOUD, next_id, _SKY_ONLY, False)
        next_id += 1

    kinds = np.concatenate(
        [
            np.full(int(rng.integers(0, 7)), TREE),
            np.full(int(rng.integers(0, 5)), ROCK),
            np.full(int(rng.integers(0, 3)) if rng.random() < 0.4 else 0, SNOW),
        ]
    )
    bases = rng.uniform(h0 + 0.01, 1.08, len(kinds))
    order = np.argsort(bases, kind="stable")
    centres = rng.uniform(0.0, aspect, len(kinds))
    shapes = rng.uniform(0.0, 1.0, (len(kinds), 3))
    for k in order:
        cls, yb, cx = int(kinds[k]), float(bases[k]), float(centres[k])
        size = 0.03 + (yb - h0) / (1 - h0) * (0.12 + 0.18 * shapes[k, 0])
        if cls == TREE:
            ground = label[min(int(yb * height), height - 1), min(int(cx * height), width - 1)]
            if not _TREE_GROUND[ground]:  # no trees standing in water or on the road
                continue
            rx, ry = size * (0.35 + 0.2 * shapes[k, 1]), size
            _paint(label, instance, jitter, ys, xs, (cx, yb - 0.9 * ry, rx, ry), TREE, next_id, None, False)
        elif cls == ROCK:
            rx = size * (0.3 + 0.3 * shapes[k, 1])
            ry = size * (0.2 + 0.2 * shapes[k, 2])
            _paint(label, instance, jitter, ys, xs, (cx, yb, rx, ry), ROCK, next_id, None, True)
        else:
            rx = size * (0.6 + 0.6 * shapes[k, 1])
            ry = rx * (0.15 + 0.15 * shapes[k, 2])
            _paint(label, instance, jitter, ys, xs, (cx, yb, rx, ry), SNOW, next_id, _PATCH_GROUND, False)
        next_id += 1


def _render(rng: np.random.Generator, label: np.ndarray, h0: float, ys: np.ndarray) -> np.ndarray:
    """Image float32 (3, H, W) in [-1, 1] from a label map, with this sample's colours and textures."""
    height, width = label.shape
    colours = _BASE + rng.normal(0.0, 0.045, (NUM_CLASSES, 3)).astype(np.float32)
    colours[SKY] *= rng.uniform(0.75, 1.1)
    mix = rng.uniform(0.0, 0.4)  # water mirrors some of this sample's sky
    colours[WATER] = (1 - mix) * colours[WATER] + mix * colours[SKY]
    texture = _TEXTURE * rng.uniform(0.6, 1.4, _TEXTURE.shape).astype(np.float32)
    warmth = rng.uniform(-1.0, 1.0)
    light = (rng.uniform(0.75, 1.15) * np.array([1 + 0.08 * warmth, 1.0, 1 - 0.08 * warmth])).astype(np.float32)
    chroma = rng.normal(0.0, 1.0, 3).astype(np.float32)

    coarse = _value_noise(rng, height, width, int(rng.integers(3, 8)))
    fine = rng.standard_normal((height, width), dtype=np.float32)
    ripples = np.sin(ys * np.float32(rng.uniform(40.0, 120.0)) + 2.0 * coarse)
    # One gather of every per-class value (3 colour channels, 5 texture amplitudes) for all pixels.
    per_pixel = np.take(np.ascontiguousarray(np.concatenate([colours, texture], 1).T), label, axis=1)
    image = per_pixel[:3]
    image += per_pixel[3] * fine + per_pixel[4] * coarse
    image += per_pixel[5] * (ys - np.float32(h0)) + per_pixel[6] * ripples
    image += chroma[:, None, None] * (per_pixel[7] * _value_noise(rng, height, width, 4))
    image *= light[:, None, None]
    np.clip(image, 0.0, 1.0, out=image)
    return image * 2.0 - 1.0


def render_sample(rng: np.random.Generator, image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene from `rng`: image float32 (3, H, W) in [-1, 1], label uint8 (H, W), instance int32 (H, W)."""
    ys, xs = _coords(int(image_size[0]), int(image_size[1]))
    label, h0 = _stuff(rng, ys, xs)
    instance = label.astype(np.int32) + 1
    _blobs(rng, label, instance, h0, ys, xs)
    return _render(rng, label, h0, ys), label, instance


@DATASETS.register("synthetic", test_params={"length": 4})
class SyntheticScenes(Dataset):
    """Procedural outdoor scenes (10 classes, instance maps) of any size; no files needed.

    Sample `i` of split "train" comes from ``numpy.random.default_rng([seed, i])``; "val" draws from a
    separate stream (spawn key 1), so the splits never share a scene.

    Args:
        labels: the spec's label schema (injected); must have exactly 10 classes.
        image_size: (H, W) of the samples (injected); any size and aspect.
        split: "train" or "val".
        length: number of samples.
        seed: selects the scenes.
    """

    def __init__(
        self,
        *,
        labels: LabelSchema = SCHEMA,
        image_size: tuple[int, int] = (64, 64),
        split: Literal["train", "val"] = "train",
        length: int = 10000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if labels.num_classes != NUM_CLASSES:
            raise DatasetError(
                f"the synthetic dataset has {NUM_CLASSES} classes ({', '.join(CLASS_NAMES)}) but the spec's labels "
                f"have num_classes {labels.num_classes}; use labels: {{num_classes: 10, dontcare: false, "
                "instance_edges: true, names: synthetic}"
            )
        if len(image_size) != 2 or min(image_size) < 4:
            raise DatasetError(f"synthetic image_size {tuple(image_size)} must be (height, width), both >= 4 pixels")
        if split not in ("train", "val"):
            raise DatasetError(f"split {split!r} is not one of train, val")
        if length < 1:
            raise DatasetError(f"synthetic length {length} must be a positive number of samples")
        if seed < 0:
            raise DatasetError(f"synthetic seed {seed} must be >= 0")
        self.labels = labels
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.split = split
        self.length = length
        self.seed = seed

    def rng(self, index: int) -> np.random.Generator:
        """The generator sample `index` is drawn from."""
        spawn_key = () if self.split == "train" else (1,)
        return np.random.default_rng(np.random.SeedSequence([self.seed, index], spawn_key=spawn_key))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} synthetic samples")
        image, label, instance = render_sample(self.rng(index), self.image_size)
        return {
            "image": torch.from_numpy(image),
            "label": torch.from_numpy(label.astype(np.int64)).unsqueeze(0),
            "instance": torch.from_numpy(instance.astype(np.int64)).unsqueeze(0),
            "path": f"synthetic:{self.split}/{self.seed}/{index}",
        }

    def __repr__(self) -> str:
        return (
            f"SyntheticScenes(split={self.split!r}, length={self.length}, image_size={self.image_size}, "
            f"seed={self.seed})"
        )


# -- the harder variant ----------------------------------------------------------------------------
HARD_CLASS_NAMES: tuple[str, ...] = tuple(f"{n}{s}" for n in CLASS_NAMES for s in ("", "-patterned"))
HARD_NUM_CLASSES = len(HARD_CLASS_NAMES)
# Display colours only: a patterned class is drawn darker in colourised label maps. In the images both
# classes of a pair have the same colour distribution; only the texture tells them apart.
HARD_PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    c for base in PALETTE for c in (base, tuple(int(v * 0.6) for v in base))
)
HARD_SCHEMA = LabelSchema(num_classes=HARD_NUM_CLASSES, dontcare=False, instance_edges=True, names="synthetic-hard")
# Per base class: orientation (radians) and period (pixels at 64 px height) of its "patterned" stripes.
_PATTERN_ANGLE = np.linspace(0.0, np.pi, NUM_CLASSES, endpoint=False).astype(np.float32)
_PATTERN_PERIOD = np.array([6.0, 5.0, 4.0, 7.0, 3.5, 4.5, 3.0, 5.5, 6.5, 4.0], dtype=np.float32)


def render_hard_sample(
    rng: np.random.Generator, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A `synthetic` scene whose regions (each stuff class, each blob) are plain or patterned at random.

    Patterned regions carry stripes of their class's own orientation and period on top of the usual
    texture, at the same mean colour: 20 classes that colour alone cannot separate.
    """
    image, label, instance = render_sample(rng, image_size)
    patterned_ids = rng.random(int(instance.max()) + 1) < 0.5
    patterned = patterned_ids[instance]
    height, width = label.shape
    ys = np.arange(height, dtype=np.float32)[:, None] * (64.0 / height)
    xs = np.arange(width, dtype=np.float32)[None, :] * (64.0 / height)
    angle, period = _PATTERN_ANGLE[label], _PATTERN_PERIOD[label]
    phase = rng.uniform(0, 2 * np.pi)
    stripes = np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period + phase).astype(np.float32)
    image = np.clip(image + (0.22 * stripes * patterned)[None], -1.0, 1.0)
    return image, (label * 2 + patterned).astype(np.uint8), instance


@DATASETS.register("synthetic-hard", test_params={"length": 4})
class SyntheticHardScenes(SyntheticScenes):
    """The synthetic scenes with every class split in two by texture: 20 classes (`HARD_CLASS_NAMES`).

    Class 2k is base class k as in `synthetic`, class 2k + 1 the same region patterned with stripes; both
    share their colours, so a segmenter (and a generator) must get texture right to keep them apart.
    A matching spec says ``labels: {num_classes: 20, dontcare: false, instance_edges: true}``. Samples are
    drawn from their own stream, so no scene of `synthetic` reappears here.

    Args:
        labels: the spec's label schema (injected); must have exactly 20 classes.
        image_size: (H, W) of the samples (injected).
        split: "train" or "val".
        length: number of samples.
        seed: selects the scenes.
    """

    def __init__(
        self,
        *,
        labels: LabelSchema = HARD_SCHEMA,
        image_size: tuple[int, int] = (64, 64),
        split: Literal["train", "val"] = "train",
        length: int = 10000,
        seed: int = 0,
    ) -> None:
        if labels.num_classes != HARD_NUM_CLASSES:
            raise DatasetError(
                f"the synthetic-hard dataset has {HARD_NUM_CLASSES} classes but the spec's labels have num_classes "
                f"{labels.num_classes}; use labels: {{num_classes: 20, dontcare: false, instance_edges: true}}"
            )
        super().__init__(labels=SCHEMA, image_size=image_size, split=split, length=length, seed=seed)
        self.labels = labels

    def rng(self, index: int) -> np.random.Generator:
        spawn_key = (2,) if self.split == "train" else (3,)
        return np.random.default_rng(np.random.SeedSequence([self.seed, index], spawn_key=spawn_key))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} synthetic-hard samples")
        image, label, instance = render_hard_sample(self.rng(index), self.image_size)
        return {
            "image": torch.from_numpy(image),
            "label": torch.from_numpy(label.astype(np.int64)).unsqueeze(0),
            "instance": torch.from_numpy(instance.astype(np.int64)).unsqueeze(0),
            "path": f"synthetic-hard:{self.split}/{self.seed}/{index}",
        }

    def __repr__(self) -> str:
        return f"SyntheticHardScenes(split={self.split!r}, length={self.length}, image_size={self.image_size})"
