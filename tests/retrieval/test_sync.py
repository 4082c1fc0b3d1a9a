"""``Retriever.sync``: a folder's added, changed, deleted, moved and unchanged files, with a fake
captioner that counts the images it captions and a counter on every decode and hash."""

import os
import sqlite3
from pathlib import Path

import pytest
from fakes import FakeCaptioner, make_image

import gemcaption.data.images
import gemcaption.retrieval.sync
from gemcaption.retrieval.metadata import MetadataStore
from gemcaption.retrieval.retriever import Retriever

RED, GREEN, BLUE = (230, 40, 30), (20, 200, 40), (20, 30, 220)


class CountingCaptioner(FakeCaptioner):
    """Counts the images captioned (FakeCaptioner.calls counts batches)."""

    def __init__(self):
        super().__init__()
        self.images = 0

    def caption(self, images, beam_width=1, **kwargs):
        self.images += len(images)
        return super().caption(images, beam_width, **kwargs)


@pytest.fixture
def counts(monkeypatch):
    """How often an image was decoded and a file hashed since the fixture started."""
    seen = {"decoded": 0, "hashed": 0}
    load, digest = gemcaption.data.images.load_image, gemcaption.retrieval.sync._hash

    def counting_load(*args, **kwargs):
        seen["decoded"] += 1
        return load(*args, **kwargs)

    def counting_hash(path):
        seen["hashed"] += 1
        return digest(path)

    monkeypatch.setattr(gemcaption.data.images, "load_image", counting_load)
    monkeypatch.setattr(gemcaption.retrieval.sync, "_hash", counting_hash)
    return seen


def set_mtime(path, seconds: int) -> None:
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


@pytest.fixture
def folder(tmp_path):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    paths = {
        "ruby": make_image(photos / "ruby.png", RED, 1),
        "emerald": make_image(photos / "emerald.png", GREEN, 2),
        "sapphire": make_image(photos / "sub" / "sapphire.png", BLUE, 3),
    }
    (photos / "notes.txt").write_text("not an image")
    for i, path in enumerate(paths.values()):
        set_mtime(path, 1_700_000_000 + i)
    return photos, paths


def synced_index(folder, tmp_path):
    photos, _ = folder
    captioner = CountingCaptioner()
    retriever = Retriever(captioner, model_dir=tmp_path / "model", progress=False)
    report = retriever.sync(photos)
    retriever.save(tmp_path / "idx")
    return retriever, captioner, report


def test_first_sync_indexes_every_image_of_the_folder(folder, tmp_path):
    retriever, captioner, report = synced_index(folder, tmp_path)
    assert sorted(report.added) == sorted(folder[1].values()) and report.captioned == captioner.images == 3
    assert report.summary() == "added 3, changed 0, removed 0, moved 0, unchanged 0, duplicates 0, failed 0"
    record = retriever.get(retriever.search("bright blue stone", k=1)[0].id)
    assert record.image == folder[1]["sapphire"] and record.size == os.stat(record.image).st_size
    assert record.mtime_ns == 1_700_000_002 * 10**9


def test_nothing_changed_reads_no_file(folder, tmp_path, counts):
    synced_index(folder, tmp_path)
    captioner = CountingCaptioner()
    counts.update(decoded=0, hashed=0)
    with Retriever.edit(tmp_path / "idx", captioner, progress=False) as retriever:
        report = retriever.sync(folder[0])
    assert report.unchanged == 3 and report.summary().startswith("added 0, changed 0, removed 0, moved 0")
    assert captioner.images == 0 and counts == {"decoded": 0, "hashed": 0}


def test_added_changed_and_deleted_files(folder, tmp_path):
    photos, paths = folder
    retriever, _, _ = synced_index(folder, tmp_path)
    ids = {
        name: retriever.search(f"bright {colour} stone", k=1)[0].id
        for name, colour in (("ruby", "red"), ("emerald", "green"), ("sapphire", "blue"))
    }
    new = make_image(photos / "sub" / "garnet.png", (90, 10, 10), 4)
    make_image(paths["emerald"], BLUE, 5)  # same name, new content
    set_mtime(paths["emerald"], 1_700_000_100)
    os.remove(paths["ruby"])
    captioner = CountingCaptioner()
    with Retriever.edit(tmp_path / "idx", captioner, progress=False) as retriever:
        report = retriever.sync(photos)
    assert (report.added, report.changed, report.removed) == ([new], [paths["emerald"]], [paths["ruby"]])
    assert report.unchanged == 1 and captioner.images == 2 == report.captioned
    saved = Retriever.load(tmp_path / "idx", progress=False)
    assert len(saved) == 3 and ids["ruby"] not in saved and ids["emerald"] not in saved
    assert saved.get(ids["sapphire"]).image == paths["sapphire"]
    by_path = {saved.get(i).image: saved.get(i).caption for i in saved.ids}
    assert by_path == {
        new: "a dark red stone",
        paths["emerald"]: "a bright blue stone",
        paths["sapphire"]: "a bright blue stone",
    }


def test_touched_file_is_hashed_once_and_not_captioned(folder, tmp_path, counts):
    photos, paths = folder
    synced_index(folder, tmp_path)
    set_mtime(paths["ruby"], 1_800_000_000)  # same content, new time
    counts.update(decoded=0, hashed=0)
    captioner = CountingCaptioner()
    with Retriever.edit(tmp_path / "idx", captioner, progress=False) as retriever:
        assert retriever.sync(photos).unchanged == 3
    assert counts == {"decoded": 0, "hashed": 1} and captioner.images == 0
    with Retriever.edit(tmp_path / "idx", captioner, progress=False) as retriever:
        assert retriever.sync(photos).unchanged == 3
    assert counts["hashed"] == 1  # the new time was stored


def test_a_moved_file_keeps_its_record(folder, tmp_path):
    photos, paths = folder
    retriever, _, _ = synced_index(folder, tmp_path)
    old_id = next(i for i in retriever.ids if retriever.get(i).image == paths["ruby"])
    moved = str(photos / "sub" / "ruby-renamed.png")
    os.rename(paths["ruby"], moved)
    captioner = CountingCaptioner()
    with Retriever.edit(tmp_path / "idx", captioner, progress=False) as retriever:
        report = retriever.sync(photos)
        assert report.moved == [(paths["ruby"], moved)] and not report.added and not report.removed
        assert retriever.get(old_id).image == moved and captioner.images == 0


def test_old_records_without_stamps_fall_back_to_the_hash(folder, tmp_path, counts):
    import dataclasses

    photos, _ = folder
    retriever, _, _ = synced_index(folder, tmp_path)
    for record in list(retriever.metadata.records.values()):
        retriever.metadata.replace(dataclasses.replace(record, size=None, mtime_ns=None))
    retriever.save(tmp_path / "idx")
    counts.update(decoded=0, hashed=0)
    captioner = CountingCaptioner()
    with Retriever.edit(tmp_path / "idx", captioner, progress=False) as loaded:
        assert loaded.sync(photos).unchanged == 3
    assert counts == {"decoded": 0, "hashed": 3} and captioner.images == 0
    assert all(r.size is not None for r in Retriever.load(tmp_path / "idx").metadata.records.values())


def test_metadata_without_stamp_columns_still_reads(tmp_path):
    path = tmp_path / "metadata.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, image TEXT, content_hash TEXT NOT NULL UNIQUE, "
        "caption TEXT NOT NULL, reference_captions TEXT NOT NULL, label TEXT);"
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO items VALUES (4, '/a.png', 'h', 'a red stone', '[]', NULL);"
    )
    connection.commit()
    connection.close()
    store, _ = MetadataStore.read(path)
    assert store.records[4].size is None and store.records[4].mtime_ns is None and store.next_id == 5


def test_records_outside_the_folder_stay_and_bad_files_are_reported(folder, tmp_path):
    photos, paths = folder
    elsewhere = make_image(tmp_path / "elsewhere.png", (200, 200, 30), 9)
    retriever = Retriever(CountingCaptioner(), progress=False)
    retriever.add([elsewhere])
    (photos / "broken.png").write_bytes(b"not a png at all")
    report = retriever.sync(photos)
    assert [path for path, _ in report.failed] == [str(photos / "broken.png")] and len(report.added) == 3
    assert len(retriever) == 4
    os.remove(paths["ruby"])
    report = retriever.sync(photos / "sub")  # only the sub-folder's records are compared
    assert report.removed == [] and report.unchanged == 1 and len(retriever) == 4


def test_a_duplicate_file_is_not_indexed_twice(folder, tmp_path):
    photos, paths = folder
    retriever, _, _ = synced_index(folder, tmp_path)
    copy = photos / "copy-of-ruby.png"
    copy.write_bytes(Path(paths["ruby"]).read_bytes())
    report = retriever.sync(photos)
    assert report.duplicates == [str(copy)] and len(retriever) == 3


def test_sync_of_a_missing_folder_is_an_error(tmp_path):
    from gemcaption.errors import ConfigError

    with pytest.raises(ConfigError, match="not a folder"):
        Retriever(CountingCaptioner(), progress=False).sync(tmp_path / "nope")


def test_a_stale_record_of_a_file_added_again_after_a_change_goes(folder, tmp_path):
    photos, paths = folder
    retriever, _, _ = synced_index(folder, tmp_path)
    make_image(paths["ruby"], GREEN, 7)  # changed, then added again without a sync: two records, one path
    retriever.add([paths["ruby"]])
    assert len(retriever) == 4
    report = retriever.sync(photos)
    assert report.unchanged == 3 and len(retriever) == 3 and report.removed == []
    assert [retriever.get(i).caption for i in retriever.ids if retriever.get(i).image == paths["ruby"]] == [
        "a bright green stone"
    ]
