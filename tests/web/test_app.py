"""The search web app's API and safety rules, through Flask's test client and a fake retriever."""

import io
import json

import numpy as np
import pytest
from fakes import FakeCaptioner, png_bytes
from PIL import Image

from gemcaption.retrieval.metadata import Record
from gemcaption.retrieval.retriever import Hit
from gemcaption.web import create_app


class FakeRetriever:
    """Four indexed items; text search matches words, image search captions by colour (the shared fake)."""

    def __init__(self, tmp_path):
        self.captioner = FakeCaptioner()
        self.beam_width = 1
        red, blue = tmp_path / "red.png", tmp_path / "blue.png"
        red.write_bytes(png_bytes("red"))
        blue.write_bytes(png_bytes("blue"))
        self.records = {
            0: Record(0, str(red), "h0", "a red stone", ("a ruby",), "ruby"),
            1: Record(1, str(blue), "h1", "a blue stone", ("a sapphire",), "sapphire"),
            2: Record(2, None, "h2", "a green stone", (), None),
            3: Record(3, str(tmp_path / "secret.txt"), "h3", "not an image", (), None),
        }
        (tmp_path / "secret.txt").write_text("secret")
        self.queries = []

    def __len__(self):
        return len(self.records)

    def get(self, item_id):
        return self.records[int(item_id)]

    def search_text(self, text, k=10):
        self.queries.append(("text", text, k))
        words = set(text.lower().split())
        scored = [(len(words & set(r.caption.split())) / 3, r) for r in self.records.values()]
        scored.sort(key=lambda pair: -pair[0])
        return [Hit(r.id, r.image, s, r.caption, r.references, r.label) for s, r in scored[:k]]

    def search_image(self, image, k=10):
        self.queries.append(("image", image, k))
        if isinstance(image, str):
            image = Image.open(image)
        return self.search_text(self.captioner.caption([image])[0], k)


@pytest.fixture
def fake(tmp_path):
    return FakeRetriever(tmp_path)


@pytest.fixture
def client(fake):
    app = create_app(fake, max_upload_bytes=4096)
    app.testing = True
    return app.test_client()


def test_page_has_image_and_text_search(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'type="file"' in html and 'id="text-input"' in html and "4 indexed images" in html
    assert client.get("/static/app.js").status_code == 200


def test_text_search_returns_ranked_hits_with_image_urls(client, fake):
    response = client.post("/api/search", json={"text": "red stone", "k": 2})
    assert response.status_code == 200
    data = response.get_json()
    assert data["query"] == {"kind": "text", "text": "red stone"}
    assert [hit["id"] for hit in data["results"]] == [0, 1]
    first = data["results"][0]
    assert first["caption"] == "a red stone" and first["captions"] == ["a ruby"] and first["label"] == "ruby"
    assert first["image_url"] == "/images/0" and first["rank"] == 1
    assert first["score"] > data["results"][1]["score"]
    assert fake.queries[-1] == ("text", "red stone", 3)  # one more than shown: is there a next page?
    assert data["offset"] == 0 and data["has_more"] is True


def test_image_upload_is_captioned_and_searched(client, fake):
    response = client.post(
        "/api/search",
        data={"image": (io.BytesIO(png_bytes("blue")), "q.png"), "k": "1"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert data["query"]["kind"] == "image" and data["query"]["caption"] == "a bright blue stone"
    assert [hit["id"] for hit in data["results"]] == [1]
    kind, image, k = fake.queries[0]
    assert kind == "image" and isinstance(image, Image.Image)  # decoded in memory, not a path
    assert k == 2  # one more than shown: is there a next page?


def test_the_query_caption_uses_the_index_sampler(fake, monkeypatch):
    seen = []
    caption = fake.captioner.caption
    monkeypatch.setattr(fake.captioner, "caption", lambda images, **kwargs: seen.append(kwargs) or caption(images))
    fake.sampler = "beam-of-3"
    client = create_app(fake).test_client()
    response = client.post(
        "/api/search", data={"image": (io.BytesIO(png_bytes("red")), "q.png")}, content_type="multipart/form-data"
    )
    assert response.get_json()["query"]["caption"] == "a bright red stone"
    assert seen[-1] == {"sampler": "beam-of-3"}
    del fake.sampler  # a retriever without samplers: its beam width, as before
    client.post(
        "/api/search", data={"image": (io.BytesIO(png_bytes("red")), "q.png")}, content_type="multipart/form-data"
    )
    assert seen[-1] == {"beam_width": 1}


def test_search_by_indexed_id(client, fake):
    data = client.post("/api/search", json={"id": 0, "k": 1}).get_json()
    assert data["query"]["kind"] == "id" and data["results"][0]["id"] == 0
    assert fake.queries[0][0] == "image" and fake.queries[0][1].endswith("red.png")
    assert client.post("/api/search", json={"id": 2, "k": 1}).status_code == 200  # no file: by its caption
    assert client.post("/api/search", json={"id": 99}).status_code == 404


def test_non_image_upload_is_refused_with_400(client, fake):
    response = client.post(
        "/api/search",
        data={"image": (io.BytesIO(b"#!/bin/sh\necho hi\n"), "x.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "not an image" in response.get_json()["error"]
    empty = client.post("/api/search", data={"image": (io.BytesIO(b""), "e.png")}, content_type="multipart/form-data")
    assert empty.status_code == 400 and "empty" in empty.get_json()["error"]
    assert not fake.queries


def test_pickle_upload_is_never_unpickled(client, tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("x",))

    response = client.post(
        "/api/search",
        data={"image": (io.BytesIO(pickle.dumps(Payload())), "x.pkl")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400 and not marker.exists()


def test_oversized_upload_gets_413(client, fake):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    assert len(buffer.getvalue()) > 4096
    response = client.post(
        "/api/search", data={"image": (io.BytesIO(buffer.getvalue()), "big.png")}, content_type="multipart/form-data"
    )
    assert response.status_code == 413
    assert "too large" in response.get_json()["error"]
    assert not fake.queries


@pytest.mark.parametrize(
    "body, message",
    [
        ({"text": "   "}, "empty"),
        ({"text": "red", "k": 0}, "between"),
        ({"text": "red", "k": "many"}, "whole number"),
        ({"text": "red", "k": 1000}, "between"),
        ({"id": "zero"}, "integer"),
        ({"text": "x" * 2000}, "longer"),
        (["red"], "JSON"),
    ],
)
def test_bad_queries_get_400_with_a_reason(client, body, message):
    response = client.post("/api/search", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_missing_form_field_gets_400(client):
    response = client.post("/api/search", data={"k": "3"}, content_type="multipart/form-data")
    assert response.status_code == 400 and "'image'" in response.get_json()["error"]


def test_only_indexed_images_are_served_by_id(client, tmp_path):
    served = client.get("/images/0")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.get_data() == (tmp_path / "red.png").read_bytes()
    assert client.get("/images/2").status_code == 404  # indexed from memory: no file
    assert client.get("/images/3").status_code == 404  # not an image file
    assert client.get("/images/42").status_code == 404
    for path in (
        "/images/-1",
        "/images/..%2fsecret.txt",
        "/images/../secret.txt",
        "/images/red.png",
        f"/images/{tmp_path}/red.png",
        "/static/../../secret.txt",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"secret" not in response.get_data()


def test_unknown_api_route_answers_json(client):
    response = client.get("/api/nothing")
    assert response.status_code == 404 and "error" in response.get_json()
    assert client.get("/api/info").get_json()["indexed"] == 4


def test_every_error_answers_json(client):
    for path in ("/images/42", "/images/../secret.txt", "/nothing"):
        response = client.get(path)
        assert response.status_code == 404 and response.is_json, path
        assert "error" in response.get_json()
    wrong_method = client.get("/api/search")
    assert wrong_method.status_code == 405 and "error" in wrong_method.get_json()


def test_an_unexpected_error_answers_json_500_without_details(fake):
    def broken_search(text, k=10):
        raise RuntimeError("secret internals /home/user/index")

    fake.search_text = broken_search
    client = create_app(fake).test_client()
    response = client.post("/api/search", json={"text": "red"})
    assert response.status_code == 500 and response.is_json
    message = response.get_json()["error"]
    assert "RuntimeError" in message and "secret" not in message


def test_library_errors_keep_their_status(fake):
    from gemcaption.errors import ModelError, QueryError

    def refuse(text, k=10):
        raise QueryError("the text query has no known word")

    def unavailable(image, k=10):
        raise ModelError("no captioner was saved with this index")

    fake.search_text, fake.search_image = refuse, unavailable
    client = create_app(fake).test_client()
    bad = client.post("/api/search", json={"text": "zzz"})
    assert bad.status_code == 400 and bad.get_json()["error"] == "the text query has no known word"
    upload = client.post(
        "/api/search", data={"image": (io.BytesIO(png_bytes("red")), "r.png")}, content_type="multipart/form-data"
    )
    assert upload.status_code == 503 and "no captioner" in upload.get_json()["error"]


def test_create_app_refuses_a_bad_upload_limit(fake):
    from gemcaption.errors import ConfigError

    with pytest.raises(ConfigError, match="max_upload_bytes"):
        create_app(fake, max_upload_bytes=0)


def test_serve_command_refuses_bad_options_and_detects_loopback():
    from gemcaption.cli import main
    from gemcaption.cli.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    assert main(["serve", "--index", "idx", "--port", "70000"]) == 2


def test_serve_command_loads_the_index_and_binds_loopback_by_default(tmp_path, monkeypatch, capsys):
    import werkzeug.serving

    from gemcaption.cli import main
    from gemcaption.retrieval.retriever import Retriever

    image = tmp_path / "red.png"
    image.write_bytes(png_bytes("red"))
    Retriever(FakeCaptioner(), progress=False).build([str(image)], captions=[["a ruby"]]).save(tmp_path / "idx")
    calls = []

    class FakeServer:
        server_port = 8123

        def serve_forever(self):
            calls.append("served")

        def server_close(self):
            calls.append("closed")

    def fake_make_server(host, port, app, threaded=False):
        calls.append((host, port, threaded))
        assert app.test_client().post("/api/search", json={"text": "red"}).status_code == 200
        return FakeServer()

    monkeypatch.setattr(werkzeug.serving, "make_server", fake_make_server)
    assert main(["serve", "--index", str(tmp_path / "idx"), "--port", "0"]) == 0
    assert calls == [("127.0.0.1", 0, True), "served", "closed"]
    captured = capsys.readouterr()
    assert "Serving 1 indexed images on http://127.0.0.1:8123/" in captured.out
    assert "image search is unavailable" in captured.err  # saved without a captioner: text search only
    assert main(["serve", "--index", str(tmp_path / "idx"), "--host", "0.0.0.0"]) == 0
    assert "other computers can reach" in capsys.readouterr().err
