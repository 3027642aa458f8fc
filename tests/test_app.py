"""semsyn-app without a browser: the HTTP API, label-map uploads and exports, refusals, features, the CLI."""

from __future__ import annotations

import io
import json
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_app_support import StyledModel

import semsyn
from semsyn.app import AppServer, Renderer, RenderRequest
from semsyn.app.labelmaps import MAX_UPLOAD_BYTES, UNPAINTED, decode_label_upload
from semsyn.cli.app import main

SIZE = (32, 64)  # (H, W): not square, so a swapped axis shows (SPADE needs multiples of 32)
SPEC = f"""\
schema: 1
name: app-test
labels: {{num_classes: 4, dontcare: false, instance_edges: true, names: [sky, grass, water, sand],
          palette: [[110, 170, 230], [95, 160, 55], [35, 85, 150], [215, 195, 140]]}}
image_size: [{SIZE[0]}, {SIZE[1]}]
generator: {{name: spade, ngf: 2, norm: instance}}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("app")
    (root / "spec.yaml").write_text(SPEC)
    return semsyn.create_model(str(root / "spec.yaml")).save_pretrained(root / "model")


@pytest.fixture(scope="module")
def app(folder: Path):
    model = semsyn.create_model(f"local-dir:{folder}", pretrained=True)
    with AppServer(Renderer(model, source="test")) as server:
        yield server


def call(app: AppServer, path: str, body: bytes | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request; a POST when there is a body."""
    request = urllib.request.Request(
        app.url.rstrip("/") + path, data=body, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def canvas(ids: np.ndarray) -> bytes:
    return ids.astype("<u2").tobytes()


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode=mode).save(out, format="PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image (a decompression bomb, as far as a reader can tell)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def error_of(status_headers_body: tuple[int, dict, bytes]) -> tuple[int, str]:
    status, headers, body = status_headers_body
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)["error"]


def halves(top: int, bottom: int) -> np.ndarray:
    ids = np.full(SIZE, top, dtype=np.int64)
    ids[SIZE[0] // 2 :] = bottom
    return ids


def test_page_and_static_files_are_served(app: AppServer) -> None:
    status, headers, body = call(app, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b'id="paint"' in body
    for name in ("app.js", "app.css"):
        assert call(app, f"/static/{name}")[0] == 200
    assert call(app, "/static/../server.py")[0] == 404


def test_info_gives_the_schema_palette_size_and_no_style_features(app: AppServer) -> None:
    info = json.loads(call(app, "/api/info")[2])
    assert info["size"] == list(SIZE)
    assert [c["name"] for c in info["classes"]] == ["sky", "grass", "water", "sand"]
    assert info["classes"][1]["color"] == [95, 160, 55]
    assert info["features"] == {"style_image": False, "class_style": False, "scales": [1]}


def test_render_returns_a_png_at_the_model_size(app: AppServer) -> None:
    status, headers, body = call(app, "/api/render?seed=3", canvas(halves(0, 1)))
    assert status == 200 and headers["Content-Type"] == "image/png" and float(headers["X-Render-Ms"]) > 0
    image = Image.open(io.BytesIO(body))
    assert image.size == (SIZE[1], SIZE[0]) and image.mode == "RGB"


def test_render_matches_synthesize(app: AppServer) -> None:
    ids = halves(2, 3)
    body = call(app, "/api/render?seed=5", canvas(ids))[2]
    expected = app.renderer.model.synthesize(torch.from_numpy(ids)[None], seed=5)
    want = ((expected[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(body))), want)


def test_empty_canvas_is_refused_with_a_message(app: AppServer) -> None:
    status, message = error_of(call(app, "/api/render", canvas(np.full(SIZE, UNPAINTED))))
    assert status == 400 and "canvas is empty" in message


def test_partly_unpainted_canvas_without_unknown_class_is_refused(app: AppServer) -> None:
    ids = halves(0, UNPAINTED)
    status, message = error_of(call(app, "/api/render", canvas(ids)))
    assert status == 400 and "50% of the canvas is unpainted" in message


def test_out_of_range_class_on_the_canvas_is_refused(app: AppServer) -> None:
    status, message = error_of(call(app, "/api/render", canvas(halves(0, 7))))
    assert status == 400 and "class id 7" in message


def test_canvas_of_the_wrong_size_is_refused(app: AppServer) -> None:
    status, message = error_of(call(app, "/api/render", canvas(np.zeros((8, 8)))))
    assert status == 400 and "reload the page" in message


def test_a_scale_the_model_cannot_render_is_refused(app: AppServer) -> None:
    status, message = error_of(call(app, "/api/render?scale=2", canvas(halves(0, 1))))
    assert status == 400 and "1x only" in message


def test_integer_label_upload_comes_back_as_ids(app: AppServer) -> None:
    ids = halves(2, 3)
    status, headers, body = call(app, "/api/label", png(ids.astype(np.uint8), "L"))
    assert status == 200 and headers["X-Semsyn-Note"] == ""
    assert np.array_equal(np.frombuffer(body, "<u2").reshape(SIZE), ids)


def test_label_upload_of_another_size_is_resized_nearest(app: AppServer) -> None:
    big = np.kron(halves(1, 3), np.ones((4, 4), dtype=np.int64)).astype(np.uint8)  # 4x larger, same layout
    status, headers, body = call(app, "/api/label", png(big, "L"))
    assert status == 200 and "resized from 256x128 to 64x32" in headers["X-Semsyn-Note"]
    assert np.array_equal(np.frombuffer(body, "<u2").reshape(SIZE), halves(1, 3))


def test_anti_aliased_colour_map_maps_every_pixel_to_its_nearest_class(folder: Path) -> None:
    schema = semsyn.create_model(f"local-dir:{folder}").labels
    colours = np.asarray(schema.colors, dtype=np.float32)
    rgb = np.zeros((*SIZE, 3), dtype=np.float32)
    rgb[:] = colours[0]
    rgb[16:] = colours[1]
    rgb[15] = 0.7 * colours[0] + 0.3 * colours[1]  # an anti-aliased edge row, nearer sky
    rgb[16] = 0.2 * colours[0] + 0.8 * colours[1]  # nearer grass
    ids = decode_label_upload(png(rgb.round().astype(np.uint8)), schema, SIZE).ids
    assert (ids[:16] == 0).all() and (ids[16:] == 1).all()


def test_colour_export_reads_back_exactly(app: AppServer) -> None:
    ids = halves(3, 1)
    ids[:3, :5] = 2
    status, _, colour = call(app, "/api/export?format=colour", canvas(ids))
    assert status == 200 and Image.open(io.BytesIO(colour)).mode == "RGB"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(colour)))[0, 0], [35, 85, 150])
    back = call(app, "/api/label", colour)[2]
    assert np.array_equal(np.frombuffer(back, "<u2").reshape(SIZE), ids)


def test_ids_export_is_a_single_channel_png_of_class_ids(app: AppServer) -> None:
    ids = halves(0, 2)
    status, _, body = call(app, "/api/export?format=ids", canvas(ids))
    image = Image.open(io.BytesIO(body))
    assert status == 200 and image.mode == "L" and np.array_equal(np.asarray(image), ids)


def test_label_upload_with_ids_outside_the_schema_is_refused(app: AppServer) -> None:
    status, message = error_of(call(app, "/api/label", png(np.full(SIZE, 37, np.uint8), "L")))
    assert status == 400 and "value 37" in message and "0..3" in message


def test_wrong_mode_upload_is_refused_with_the_mode(app: AppServer) -> None:
    la = Image.new("LA", (SIZE[1], SIZE[0]))
    out = io.BytesIO()
    la.save(out, format="PNG")
    status, message = error_of(call(app, "/api/label", out.getvalue()))
    assert status == 400 and "mode LA" in message


def test_photo_uploaded_as_label_map_is_refused(app: AppServer) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    status, message = error_of(call(app, "/api/label", png(noise)))
    assert status == 400 and "looks like a photo" in message


def test_non_image_upload_is_refused(app: AppServer) -> None:
    status, message = error_of(call(app, "/api/label", b"not an image at all"))
    assert status == 400 and "not an image" in message


def test_upload_over_the_byte_limit_is_refused_with_413(app: AppServer) -> None:
    status, message = error_of(call(app, "/api/label", bytes(MAX_UPLOAD_BYTES + 1)))
    assert status == 413 and "16 MB" in message


def test_upload_of_huge_dimensions_is_refused_before_decoding(app: AppServer) -> None:
    for side in (9000, 20000):  # past the app's limit; past PIL's own decompression-bomb limit too
        status, message = error_of(call(app, "/api/label", png_claiming(side, side)))
        assert status == 413 and "up to 64 megapixels" in message


def test_style_image_is_refused_by_a_model_without_encoder(app: AppServer) -> None:
    status, message = error_of(call(app, "/api/style", png(np.zeros((8, 8, 3), np.uint8))))
    assert status == 400 and "no style encoder" in message


def test_style_features_light_up_for_a_model_with_the_style_api(folder: Path) -> None:
    renderer = Renderer(StyledModel(semsyn.create_model(f"local-dir:{folder}")))
    assert renderer.info()["features"] == {"style_image": True, "class_style": True, "scales": [1, 2, 4]}
    token = renderer.add_style_image(png(np.full((40, 40, 3), 200, np.uint8)))
    png_bytes, _ = renderer.render(
        RenderRequest(ids=halves(0, 1), seed=9, scale=2, style_token=token, class_seeds={1: 4})
    )
    assert Image.open(io.BytesIO(png_bytes)).size == (2 * SIZE[1], 2 * SIZE[0])
    assert renderer.model.log == [
        ("encode_style", (1, 3, *SIZE), (1, *SIZE)),
        ("resample_class", 1, 4),
        ("synthesize", ["seed", "size", "style"], (2 * SIZE[0], 2 * SIZE[1])),
    ]


def test_class_seeds_without_a_style_image_start_from_the_prior(folder: Path) -> None:
    renderer = Renderer(StyledModel(semsyn.create_model(f"local-dir:{folder}")))
    renderer.render(RenderRequest(ids=halves(0, 1), seed=2, class_seeds={0: 8}))
    assert renderer.model.log[:2] == [("sample_style", 2, None), ("resample_class", 0, 8)]


def test_cli_bad_device_exits_2_with_one_line(folder: Path, capsys) -> None:
    assert main([f"local-dir:{folder}", "--device", "warp-drive"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warp-drive" in err[0]


def test_cli_busy_port_exits_2_naming_the_port(folder: Path, app: AppServer, capsys) -> None:
    port = app.server_address[1]
    assert main([f"local-dir:{folder}", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f":{port}" in err[0] and "--port" in err[0]


def test_cli_unknown_model_exits_2(capsys) -> None:
    assert main(["no-such-model-anywhere"]) == 2
    assert capsys.readouterr().err.startswith("semsyn-app: error:")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cli_cuda_without_a_gpu_exits_2(folder: Path, capsys) -> None:
    assert main([f"local-dir:{folder}", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
