"""The search server under malformed and hostile requests: every one gets a 4xx JSON error (never a
500), uploads are capped in pixels before decoding, decodes are bounded, and uploads never write the
feature cache. Each test reproduces one report of issue 12."""

import io
import json
import struct
import threading
import zlib

import numpy as np
import pytest
from fakes import FakeCaptioner, png_bytes
from PIL import Image, ImageFile

from gemcaption.captioning.features import extract_features, memory_features
from gemcaption.data.images import PixelLimitError, load_image, read_image_size
from gemcaption.retrieval.metadata import Record
from gemcaption.retrieval.retriever import Hit
from gemcaption.web import create_app


class TinyRetriever:
    """Two indexed items with image files; records every query it is asked."""

    def __init__(self, tmp_path):
        self.captioner = FakeCaptioner()
        self.beam_width = 1
        self.records = {}
        for i, colour in enumerate(("red", "blue")):
            path = tmp_path / f"{colour}.png"
            path.write_bytes(png_bytes(colour))
            self.records[i] = Record(i, str(path), f"h{i}", f"a {colour} stone", (), colour)
        self.queries = []

    def __len__(self):
        return len(self.records)

    def get(self, item_id):
        return self.records[int(item_id)]

    def search_text(self, text, k=10):
        self.queries.append(("text", text, k))
        return [Hit(r.id, r.image, 1.0, r.caption, r.references, r.label) for r in self.records.values()][:k]

    def search_image(self, image, k=10):
        self.queries.append(("image", image, k))
        return self.search_text(self.captioner.caption([image])[0], k)


@pytest.fixture
def fake(tmp_path):
    return TinyRetriever(tmp_path)


@pytest.fixture
def client(fake):
    return create_app(fake).test_client()


def post_json_text(client, text: str):
    return client.post("/api/search", data=text, content_type="application/json")


def assert_json_error(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.is_json
    message = response.get_json()["error"]
    for word in words:
        assert word in message, message
    return message


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with one tiny (incomplete) data chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def upload(client, data: bytes, name: str = "up.png", **fields):
    form = {"image": (io.BytesIO(data), name), **fields}
    return client.post("/api/search", data=form, content_type="multipart/form-data")


# -- JSON bodies ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, words",
    [
        ('{"text": "red", "k": 1e400}', ("too large",)),
        ('{"text": "red", "k": 1.9}', ("whole number",)),
        ('{"text": "red", "k": 2.0}', ("whole number",)),
        ('{"text": "red", "k": true}', ("whole number",)),
        ('{"text": "red", "k": "3"}', ("whole number",)),
        ('{"text": "red", "k": NaN}', ("NaN",)),
        ('{"text": "red", "k": Infinity}', ("Infinity",)),
        ('{"text": "red", "k": -Infinity}', ("Infinity",)),
        ('{"text": "red", "k": ' + "9" * 5000 + "}", ("digits",)),
        ('{"text": "red", "k": -3}', ("between",)),
        ('{"text": "red", "k": [3]}', ("whole number",)),
        ('{"id": "\uff11"}', ("non-negative integer",)),
        ('{"id": -1}', ("non-negative integer",)),
        ('{"id": 1.5}', ("non-negative integer",)),
        ('{"text": 5}', ("empty",)),
        ('{"text": "red"', ("not valid JSON",)),
        ("", ("JSON",)),
        ("[1, 2]", ("object",)),
        ("null", ("object",)),
    ],
)
def test_malformed_json_gets_400_json(client, fake, body, words):
    assert_json_error(post_json_text(client, body), 400, *words)
    assert not fake.queries


def test_invalid_utf8_json_gets_400(client):
    response = client.post("/api/search", data=b'{"text": "\xff\xfe"}', content_type="application/json")
    assert_json_error(response, 400, "UTF-8")


@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a":', "}")])
def test_deeply_nested_json_gets_400_not_recursion_error(client, opening, closing):
    depth = 10_000
    assert_json_error(post_json_text(client, opening * depth + "1" + closing * depth), 400, "nested", "32")
    assert_json_error(post_json_text(client, opening * 33 + "1" + closing * 33), 400, "nested")


def test_nesting_within_the_limit_and_brackets_in_strings_are_fine(client, fake):
    nested = '{"text": "red", "extra": ' + "[" * 30 + "1" + "]" * 30 + "}"
    assert post_json_text(client, nested).status_code == 200
    brackets = json.dumps({"text": "red [[[[" + "[" * 200 + '\\"{{{{', "k": 1})
    response = post_json_text(client, brackets)
    assert response.status_code == 200 and response.get_json()["k"] == 1


def test_huge_json_body_gets_413_naming_the_json_limit(client, fake):
    body = json.dumps({"text": "red", "pad": "x" * 200_000})
    message = assert_json_error(post_json_text(client, body), 413, "JSON", "64 KB")
    assert "MB" not in message
    assert not fake.queries


def test_valid_json_still_works(client, fake):
    response = post_json_text(client, '{"text": "red", "k": 1}')
    assert response.status_code == 200 and len(response.get_json()["results"]) == 1
    assert client.post("/api/search", json={"id": "1", "k": 2}).status_code == 200


# -- ids in paths -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/images/%EF%BC%91", "/images/\u0661", "/images/1.0", "/images/+1", "/images/" + "1" * 19]
)
def test_only_ascii_digit_ids_are_served(client, path):
    assert_json_error(client.get(path), 404)


def test_an_ascii_id_is_served(client):
    assert client.get("/images/1").status_code == 200


def test_wrong_method_and_unknown_route_answer_json(client):
    assert_json_error(client.get("/api/search"), 405)
    assert_json_error(client.get("/api/reload"), 405)
    assert_json_error(client.post("/api/reload"), 404, "live reload is off")
    assert_json_error(client.delete("/images/1"), 405)


# -- uploads ----------------------------------------------------------------------------------------
def test_read_image_size_reads_the_header_only(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert read_image_size(png_header(8000, 8000)) == (8000, 8000)
    with pytest.raises(PixelLimitError, match="8000x8000"):
        load_image(png_header(8000, 8000), max_pixels=40_000_000)


def test_an_8000x8000_png_is_refused_from_its_header_with_413(client, fake, monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert_json_error(upload(client, png_header(8000, 8000)), 413, "8000x8000", "40000000")
    assert not fake.queries


def test_a_header_beyond_pillows_own_bomb_limit_is_also_a_413(client, fake):
    with pytest.raises(PixelLimitError, match="decompression bomb"):
        read_image_size(png_header(20_000, 20_000))
    assert_json_error(upload(client, png_header(20_000, 20_000)), 413, "image too large")
    assert not fake.queries


def test_the_pixel_cap_is_configurable(fake):
    small = create_app(fake, max_pixels=100).test_client()
    assert_json_error(upload(small, png_bytes("red", size=16)), 413, "16x16", "100")
    assert upload(small, png_bytes("red", size=8)).status_code == 200


def test_uploads_are_shrunk_right_after_decoding(client, fake):
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 300), (200, 20, 20)).save(buffer, "PNG")
    assert upload(client, buffer.getvalue()).status_code == 200
    searched = fake.queries[0][1]
    assert max(searched.size) == 1024 and searched.size[1] in (102, 103)


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data", b"--x\r\nnot a form"),
        ("multipart/form-data; boundary=x", b"garbage without any boundary"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Type: text/plain\r\n\r\nno disposition\r\n--x--\r\n"),
        ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="image"'),
        ("application/x-www-form-urlencoded", b"image=%ZZ&k=%"),
    ],
)
def test_bad_multipart_gets_400_json(client, fake, content_type, body):
    assert_json_error(client.post("/api/search", data=body, content_type=content_type), 400)
    assert not fake.queries


@pytest.mark.parametrize("k, words", [("1.9", ("whole number",)), ("\uff11", ("whole number",)), ("0", ("between",))])
def test_bad_form_k_gets_400(client, k, words):
    assert_json_error(upload(client, png_bytes("red"), k=k), 400, *words)


def test_not_an_image_upload_gets_400(client):
    assert_json_error(upload(client, b"GIF89a but not really"), 400, "not an image")


def test_a_large_form_field_names_the_form_limit_not_the_upload_limit(client):
    message = assert_json_error(upload(client, png_bytes("red"), k="1" * 100_000), 413, "text field", "64 KB")
    assert "upload too large" not in message


def test_an_oversized_request_names_the_upload_limit(fake):
    small = create_app(fake, max_upload_bytes=2048).test_client()
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    assert_json_error(upload(small, buffer.getvalue()), 413, "upload too large", "MB")


def test_decodes_beyond_the_bound_wait_then_get_503(fake, monkeypatch):
    import gemcaption.web.app as app_module

    entered, release = threading.Event(), threading.Event()
    real_load = app_module.load_image

    def slow_load(*args, **kwargs):
        entered.set()
        release.wait(5)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(app_module, "load_image", slow_load)
    app = create_app(fake, max_decodes=1, decode_wait=0.2)
    results = []
    first = threading.Thread(target=lambda: results.append(upload(app.test_client(), png_bytes("red")).status_code))
    first.start()
    assert entered.wait(5)
    assert_json_error(upload(app.test_client(), png_bytes("blue")), 503, "busy")
    release.set()
    first.join(5)
    assert results == [200]
    assert upload(app.test_client(), png_bytes("blue")).status_code == 200  # the slot was given back


# -- the feature cache ------------------------------------------------------------------------------
class CountingEncoder:
    """A stand-in encoder: the mean colour as a 1x3 feature grid; counts the images it encodes."""

    name, image_size = "counting", 8

    def __init__(self):
        self.encoded = 0

    def config(self):
        return {"name": self.name, "image_size": self.image_size}

    def features(self, pixels, batch_size=32):
        self.encoded += len(pixels)
        return np.asarray(pixels, np.float32).reshape(len(pixels), -1, 3).mean(axis=1, keepdims=True)


def cache_listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_uploads_never_write_the_feature_cache(tmp_path, monkeypatch, fake):
    root = tmp_path / "cache"
    monkeypatch.setenv("GEMCAPTION_CACHE", str(root))
    encoder = CountingEncoder()
    extract_features(encoder, [Image.new("RGB", (8, 8), (1, 2, 3))], progress=False)  # outside: cached on disk
    before = cache_listing(root)
    assert any(name.endswith(".npy") for name in before)

    def search_image(image, k=10):  # like the real Retriever: caption, then features, of the same image
        extract_features(encoder, [image], progress=False)
        extract_features(encoder, [image], progress=False)
        return fake.search_text("red", k)

    fake.search_image = search_image
    client = create_app(fake).test_client()
    for i in range(20):
        assert upload(client, png_bytes((i * 10, 100, 200 - i))).status_code == 200
    assert cache_listing(root) == before
    assert encoder.encoded == 1 + 20  # the second look at each upload came from memory


def test_memory_features_is_bounded_and_scoped(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMCAPTION_CACHE", str(tmp_path / "cache"))
    encoder = CountingEncoder()
    images = [Image.new("RGB", (8, 8), (i, 0, 0)) for i in range(5)]
    with memory_features() as store:
        store.max_items = 3
        features, kept = extract_features(encoder, images, progress=False)
    assert kept == [0, 1, 2, 3, 4] and features.shape == (5, 1, 3) and len(store) == 3
    assert not list((tmp_path / "cache").rglob("*.npy"))
    extract_features(encoder, images[:1], progress=False)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1  # outside the block the disk cache is back
