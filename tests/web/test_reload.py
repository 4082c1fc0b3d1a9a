"""Live reload: a server over an index directory picks up a version saved by another process, on
request (POST /api/reload) or on its own, and keeps the old version when the new one is damaged."""

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fakes import FakeCaptioner, png_bytes

from gemcaption.retrieval.retriever import Retriever
from gemcaption.web import create_app
from gemcaption.web.reload import LiveRetriever

TESTS = Path(__file__).resolve().parents[1]

SAVE_IN_ANOTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from fakes import FakeCaptioner, png_bytes
    from gemcaption.retrieval.retriever import Retriever

    index, images = sys.argv[1], sys.argv[2:]
    captions = [["a ruby"], ["a sapphire"], ["an emerald"]][: len(images)]
    Retriever(FakeCaptioner(), progress=False).build(images, captions=captions).save(index)
    """
)


def write_images(tmp_path, colours):
    paths = []
    for colour in colours:
        path = tmp_path / f"{colour}.png"
        path.write_bytes(png_bytes(colour))
        paths.append(str(path))
    return paths


def build(tmp_path, images):
    return Retriever(FakeCaptioner(), progress=False).build(images, captions=[["a ruby"]] * len(images))


def load(directory, previous):
    return Retriever.load(directory, captioner=FakeCaptioner(), progress=False)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def served(tmp_path):
    index = tmp_path / "idx"
    build(tmp_path, write_images(tmp_path, ["red"])).save(index)
    clock = Clock()
    live = LiveRetriever(index, load, check_interval=1.0, clock=clock, background=False)
    return index, live, clock, create_app(live).test_client()


def test_an_index_saved_by_another_process_is_picked_up_on_request(tmp_path, served):
    index, live, clock, client = served
    assert client.get("/api/info").get_json()["indexed"] == 1
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    images = write_images(tmp_path, ["red", "blue", "green"])
    saver = subprocess.Popen([sys.executable, "-c", SAVE_IN_ANOTHER_PROCESS, str(index), *images], env=env)
    answered = 0
    while saver.poll() is None:  # the server keeps answering (the old version) while the other process saves
        response = client.post("/api/search", json={"text": "ruby"})
        assert response.status_code == 200 and len(response.get_json()["results"]) == 1
        answered += 1
        time.sleep(0.05)
    assert saver.returncode == 0 and answered > 0
    assert len(live.current) == 1  # no reload without a request for one (the clock did not move)
    answer = client.post("/api/reload")
    assert answer.status_code == 200
    status = answer.get_json()
    assert status["reloaded"] is True and status["size"] == 3 and "generation" in status
    assert client.get("/api/info").get_json()["indexed"] == 3
    again = client.post("/api/reload").get_json()
    assert again["reloaded"] is False and again["size"] == 3 and again["generation"] == status["generation"]


def test_a_new_version_is_watched_for_at_most_once_a_second(tmp_path, served):
    index, live, clock, client = served
    build(tmp_path, write_images(tmp_path, ["red", "blue"])).save(index)
    clock.now = 0.5
    assert client.get("/api/info").get_json()["indexed"] == 1  # not looked at yet
    clock.now = 1.2
    assert client.get("/api/info").get_json()["indexed"] == 2
    ids = {hit["id"] for hit in client.post("/api/search", json={"text": "ruby"}).get_json()["results"]}
    assert len(ids) == 2


def test_a_watched_change_loads_in_the_background_while_the_old_version_answers(tmp_path):
    index = tmp_path / "idx"
    build(tmp_path, write_images(tmp_path, ["red"])).save(index)
    started, release = threading.Event(), threading.Event()

    def slow_load(directory, previous):
        if previous is not None:
            started.set()
            assert release.wait(10)
        return load(directory, previous)

    clock = Clock()
    live = LiveRetriever(index, slow_load, clock=clock)
    client = create_app(live).test_client()
    build(tmp_path, write_images(tmp_path, ["red", "blue"])).save(index)
    clock.now = 2.0
    assert client.get("/api/info").get_json()["indexed"] == 1  # noticed; loading elsewhere
    assert started.wait(10)
    clock.now = 4.0
    assert client.post("/api/search", json={"text": "ruby"}).status_code == 200  # not blocked by the load
    assert len(live.current) == 1
    release.set()
    deadline = time.monotonic() + 10
    while len(live.current) != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.get("/api/info").get_json()["indexed"] == 2


def test_a_damaged_new_version_keeps_the_old_one_and_reports_it(tmp_path, served):
    index, live, clock, client = served
    build(tmp_path, write_images(tmp_path, ["red", "blue"])).save(index)
    (index / "metadata.sqlite").write_bytes(b"damaged")  # listed in the manifest with its checksum
    answer = client.post("/api/reload")
    assert answer.status_code == 409 and answer.is_json
    status = answer.get_json()
    assert status["reloaded"] is False and status["size"] == 1 and "previous version" in status["error"]
    clock.now = 5.0
    assert client.post("/api/search", json={"text": "ruby"}).status_code == 200  # the old one answers
    assert len(live.current) == 1
    build(tmp_path, write_images(tmp_path, ["red", "blue"])).save(index)  # repaired by a new save
    healed = client.post("/api/reload").get_json()
    assert healed["reloaded"] is True and healed["size"] == 2 and "error" not in healed


def test_serve_reuses_the_loaded_captioner_on_reload(tmp_path):
    from argparse import Namespace

    from gemcaption.cli.serve import _loader

    index = tmp_path / "idx"
    build(tmp_path, write_images(tmp_path, ["red"])).save(index)
    first = Retriever.load(index, captioner=FakeCaptioner(), progress=False)
    fresh = _loader(Namespace(model=None))(index, first)
    assert fresh.captioner is first.captioner


def test_serve_reloads_by_default_and_not_with_no_reload(tmp_path, monkeypatch, capsys):
    import werkzeug.serving

    from gemcaption.cli import main

    index = tmp_path / "idx"
    build(tmp_path, write_images(tmp_path, ["red"])).save(index)
    answers = []

    class FakeServer:
        server_port = 8123

        def serve_forever(self):
            pass

        def server_close(self):
            pass

    def fake_make_server(host, port, app, threaded=False):
        client = app.test_client()
        build(tmp_path, write_images(tmp_path, ["red", "blue"])).save(index)  # another version appears
        reload = client.post("/api/reload")
        answers.append((reload.status_code, reload.get_json(), client.get("/api/info").get_json()["indexed"]))
        return FakeServer()

    monkeypatch.setattr(werkzeug.serving, "make_server", fake_make_server)
    assert main(["serve", "--index", str(index), "--port", "0"]) == 0
    status, payload, indexed = answers.pop()
    assert status == 200 and payload["reloaded"] is True and payload["size"] == 2 and indexed == 2
    assert main(["serve", "--index", str(index), "--port", "0", "--no-reload"]) == 0
    status, payload, indexed = answers.pop()
    assert status == 404 and "live reload is off" in payload["error"] and indexed == 2
    for bad in (["--max-pixels", "0"], ["--max-decodes", "0"]):
        capsys.readouterr()
        assert main(["serve", "--index", str(index), *bad]) == 2
        assert bad[0] in capsys.readouterr().err  # one line naming the option
