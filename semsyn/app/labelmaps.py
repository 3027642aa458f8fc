"""Label maps in and out of the app: uploaded PNGs -> class ids, class ids -> integer and colour PNGs.

Everything here works on numpy arrays of class ids at the model's size, (H, W) int64, with `UNPAINTED`
(255, semsyn's "unknown") for pixels nobody painted. Every failure is an `AppInputError` whose message
the page shows as it is: it says what is wrong with the input and what to do instead.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from semsyn.errors import LabelError
from semsyn.labels import UNKNOWN, LabelSchema

__all__ = [
    "AppInputError",
    "UNPAINTED",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_PIXELS",
    "INTEGER_MODES",
    "COLOUR_MODES",
    "Upload",
    "decode_label_upload",
    "decode_image_upload",
    "check_painted",
    "ids_png",
    "colour_png",
    "colourise",
]

UNPAINTED = UNKNOWN
MAX_UPLOAD_BYTES = 16 * 1024 * 1024
# A label map is resized to the model's size anyway; 8k x 8k is far past any dataset's maps, and the
# limit keeps a decompression bomb (a tiny PNG of a huge blank image) from reaching the decoder.
MAX_UPLOAD_PIXELS = 8192 * 8192
INTEGER_MODES = ("L", "P", "I", "I;16")
COLOUR_MODES = ("RGB", "RGBA")
# A colour label map's pixels sit on (or, after anti-aliasing or JPEG, near) the palette; a photo's do not.
# A pixel farther than this from every class colour (RGB distance) counts as off-palette.
OFF_PALETTE_DISTANCE = 60.0
MAX_OFF_PALETTE_FRACTION = 0.2


class AppInputError(LabelError):
    """Something a person gave the app (a canvas, an upload) that it cannot use; the message says why.

    Args:
        message: one or two sentences for the page.
        status: the HTTP status the server answers with (400 bad input, 413 too large).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    """A decoded label-map upload.

    Args:
        ids: (H, W) int64 class ids at the model's size, `UNPAINTED` where the map said unknown.
        note: what was done to it (resized, read as colours), for the page; "" when nothing.
    """

    ids: np.ndarray
    note: str = ""


def _open_image(data: bytes, what: str):
    from PIL import Image

    if len(data) > MAX_UPLOAD_BYTES:
        raise AppInputError(
            f"the {what} is {len(data) / 2**20:.1f} MB; the app takes files up to {MAX_UPLOAD_BYTES // 2**20} MB",
            status=413,
        )
    if not data:
        raise AppInputError(f"the {what} is an empty file; choose a PNG")
    limit = f"the app takes images up to {MAX_UPLOAD_PIXELS // 2**20} megapixels (it resizes them to the model's size)"
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise AppInputError(f"the {what} is too large for PIL to decode safely; {limit}: scale it down", 413) from None
    except Exception:  # PIL raises several types for unreadable data; the user only needs to know it is not an image
        raise AppInputError(f"the {what} is not an image PIL can read; upload a PNG") from None
    width, height = img.size
    if width * height > MAX_UPLOAD_PIXELS:
        raise AppInputError(f"the {what} is {width}x{height} pixels; {limit}: scale it down", status=413)
    try:
        img.load()
    except Exception:
        raise AppInputError(f"the {what} is truncated or corrupt; save it again as a PNG") from None
    return img


def _resize_nearest(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an id map to (H, W): ids are never blended."""
    h, w = ids.shape
    rows = (np.arange(size[0]) * h // size[0]).clip(0, h - 1)
    cols = (np.arange(size[1]) * w // size[1]).clip(0, w - 1)
    return ids[rows[:, None], cols[None, :]]


def _nearest_colour(rgb: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) colours -> (H, W) ids of the nearest palette colour, and (H, W) True where far from all."""
    flat = rgb.reshape(-1, 3).astype(np.float32)
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)  # label maps hold few distinct colours
    dist = ((colours[:, None, :] - palette[None, :, :].astype(np.float32)) ** 2).sum(-1)
    far = np.sqrt(dist.min(1)) > OFF_PALETTE_DISTANCE
    inverse = inverse.reshape(-1)
    return dist.argmin(1)[inverse].reshape(rgb.shape[:2]), far[inverse].reshape(rgb.shape[:2])


def decode_label_upload(data: bytes, schema: LabelSchema, size: tuple[int, int]) -> Upload:
    """An uploaded label map -> class ids at the model's size.

    Integer maps (mode L, P, I, I;16) hold class ids, 255 = unknown. Colour maps (RGB, RGBA) are read by
    the nearest class colour of the schema's palette (so anti-aliased edges still map to a class);
    transparent pixels of an RGBA map are unknown.

    Args:
        data: the file's bytes.
        schema: the model's label schema (ids are checked against it).
        size: the model's (H, W); other sizes are resized (nearest neighbour).

    Raises:
        AppInputError: too large, unreadable, a mode that is neither ids nor colours, ids outside the schema,
            or a colour image that is not on the palette (a photo, most likely).
    """
    img = _open_image(data, "label map")
    notes = []
    if img.mode in INTEGER_MODES:
        ids = np.asarray(img, dtype=np.int64)
    elif img.mode in COLOUR_MODES:
        rgba = np.asarray(img.convert("RGBA"))
        unknown = rgba[..., 3] < 128
        if (0, 0, 0) not in schema.colors:  # colourised maps paint unknown black (never a default palette colour)
            unknown |= (rgba[..., :3] == 0).all(-1)
        ids, far = _nearest_colour(rgba[..., :3], np.asarray(schema.colors))
        far_fraction = float(far[~unknown].mean()) if (~unknown).any() else 0.0
        if far_fraction > MAX_OFF_PALETTE_FRACTION:
            raise AppInputError(
                f"{far_fraction:.0%} of this colour image's pixels are far from every class colour: it looks like "
                "a photo, not a label map. Upload a map painted in the palette's colours, or one of class ids (mode L)"
            )
        ids = np.where(unknown, UNPAINTED, ids)
        notes.append("read as colours (nearest class colour)")
    else:
        raise AppInputError(
            f"the label map is a mode {img.mode} image; upload class ids as a single-channel PNG (mode L, P or I) "
            "or a colour PNG (RGB) in the palette's colours"
        )
    bad = (ids != UNPAINTED) & ((ids < 0) | (ids >= schema.num_classes))
    if bad.any():
        y, x = (int(v) for v in np.argwhere(bad)[0])
        raise AppInputError(
            f"the label map holds value {int(ids[y, x])} at (x, y) = ({x}, {y}), outside this model's classes "
            f"0..{schema.num_classes - 1} (255 = unknown); is it a label map of another dataset?"
        )
    if ids.shape != tuple(size):
        notes.append(f"resized from {ids.shape[1]}x{ids.shape[0]} to {size[1]}x{size[0]}")
        ids = _resize_nearest(ids, size)
    return Upload(ids=ids, note="; ".join(notes))


def decode_image_upload(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """An uploaded style image -> float32 (3, H, W) in [-1, 1] at the model's size.

    Raises:
        AppInputError: too large or unreadable.
    """
    from PIL import Image

    img = _open_image(data, "style image").convert("RGB").resize((size[1], size[0]), Image.Resampling.BICUBIC)
    return (np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0).clip(-1.0, 1.0)


def check_painted(ids: np.ndarray, schema: LabelSchema) -> None:
    """Refuse a canvas the model cannot render, with a message that says what to paint.

    Raises:
        AppInputError: nothing painted; unpainted pixels for a schema with no unknown class; ids out of range.
    """
    unpainted = ids == UNPAINTED
    if unpainted.all():
        raise AppInputError("the canvas is empty: pick a class and paint, use the fill tool, or upload a label map")
    if unpainted.any() and not schema.dontcare:
        raise AppInputError(
            f"{unpainted.mean():.0%} of the canvas is unpainted and this model has no 'unknown' class: "
            "paint or fill those pixels (they show as a checkerboard)"
        )
    bad = ~unpainted & ((ids < 0) | (ids >= schema.num_classes))
    if bad.any():
        raise AppInputError(
            f"the canvas holds class id {int(ids[bad][0])}, outside this model's classes 0..{schema.num_classes - 1}"
        )


def colourise(ids: np.ndarray, schema: LabelSchema) -> np.ndarray:
    """(H, W) ids -> (H, W, 3) uint8 in the schema's colours; unknown pixels black."""
    n = schema.num_classes
    table = np.zeros((max(n, UNPAINTED) + 1, 3), dtype=np.uint8)  # the last row stays black: unknown
    table[:n] = np.asarray(schema.colors, dtype=np.uint8)
    return table[np.where((ids >= 0) & (ids < n), ids, len(table) - 1)]


def _png(array: np.ndarray, mode: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(array, mode=mode).save(out, format="PNG")
    return out.getvalue()


def ids_png(ids: np.ndarray) -> bytes:
    """(H, W) ids -> a single-channel PNG of class ids (mode L; mode I;16 past 255), what semsyn-synthesize reads."""
    if int(ids.max(initial=0)) <= 255:
        return _png(ids.astype(np.uint8), "L")
    return _png(ids.astype(np.uint16), "I;16")


def colour_png(ids: np.ndarray, schema: LabelSchema) -> bytes:
    """(H, W) ids -> an RGB PNG in the schema's colours (the app reads it back exactly)."""
    return _png(colourise(ids, schema), "RGB")
