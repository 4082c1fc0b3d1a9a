"""gemcaption.persistence: manifests (format, version, checksums), atomic files and directories."""

import json
import os

import pytest

from gemcaption import persistence
from gemcaption.errors import ModelError

FORMAT = "gemcaption-thing"


def saved(tmp_path, version=2):
    """A directory with two files (one in a sub-folder) and its manifest."""
    folder = tmp_path / "thing"
    (folder / "weights").mkdir(parents=True)
    (folder / "vocabulary.json").write_text('["a", "b"]')
    (folder / "weights" / "layer.bin").write_bytes(b"\x00\x01\x02")
    persistence.write_manifest(folder, FORMAT, version, "tiny", {"size": 3, "name": "rubí"})
    return folder


def test_manifest_round_trip_with_a_checksum_per_file(tmp_path):
    folder = saved(tmp_path)
    manifest = persistence.read_manifest(folder, FORMAT, versions=(1, 2))
    assert (manifest.format, manifest.format_version, manifest.kind) == (FORMAT, 2, "tiny")
    assert manifest.config == {"size": 3, "name": "rubí"}
    assert sorted(manifest.files) == ["vocabulary.json", "weights/layer.bin"]
    assert all(len(digest) == 64 for digest in manifest.files.values())
    on_disk = json.loads((folder / persistence.MANIFEST_FILE).read_text(encoding="utf-8"))
    assert on_disk == manifest.to_dict()


def test_a_newer_format_version_is_refused_naming_the_version(tmp_path):
    folder = saved(tmp_path, version=7)
    with pytest.raises(ModelError, match=r"format version 7 is not supported .*reads versions 1, 2.*upgrade"):
        persistence.read_manifest(folder, FORMAT, versions=(1, 2))


def test_an_unknown_version_or_another_format_is_refused(tmp_path):
    folder = saved(tmp_path)
    with pytest.raises(ModelError, match="format version 2 is not supported"):
        persistence.read_manifest(folder, FORMAT, versions=(3,))
    with pytest.raises(ModelError, match="not a gemcaption-other directory"):
        persistence.read_manifest(folder, "gemcaption-other", versions=(2,))
    with pytest.raises(ModelError, match="no such directory"):
        persistence.read_manifest(tmp_path / "absent", FORMAT, versions=(2,))


@pytest.mark.parametrize("damage", ["changed", "missing"])
def test_a_changed_or_missing_file_is_reported_as_damaged(tmp_path, damage):
    folder = saved(tmp_path)
    target = folder / "weights" / "layer.bin"
    if damage == "changed":
        target.write_bytes(b"\x00\x01\x03")
    else:
        target.unlink()
    with pytest.raises(ModelError, match=r"damaged: .*layer\.bin") as caught:
        persistence.read_manifest(folder, FORMAT, versions=(2,))
    assert str(caught.value).endswith("(missing)" if damage == "missing" else "(checksum differs from manifest.json)")
    assert persistence.read_manifest(folder, FORMAT, versions=(2,), verify=False).kind == "tiny"


def test_a_damaged_manifest_is_named(tmp_path):
    folder = saved(tmp_path)
    (folder / persistence.MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ModelError, match=r"damaged: .*manifest\.json"):
        persistence.read_manifest(folder, FORMAT, versions=(2,))


def test_atomic_write_leaves_the_old_content_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "notes.txt"
    persistence.atomic_write_text(path, "old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(persistence.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        persistence.atomic_write_bytes(path, b"new content that never lands")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["notes.txt"]  # no temporary file left behind
    monkeypatch.undo()
    persistence.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["notes.txt"]


def test_json_helpers_keep_accents_and_name_unreadable_files(tmp_path):
    persistence.write_json(tmp_path / "a.json", {"caption": "anillo de rubí"})
    assert "rubí" in (tmp_path / "a.json").read_text(encoding="utf-8")
    assert persistence.read_json(tmp_path / "a.json") == {"caption": "anillo de rubí"}
    with pytest.raises(ModelError, match="not found"):
        persistence.read_json(tmp_path / "missing.json")


def test_a_failed_directory_save_leaves_the_previous_version(tmp_path):
    target = tmp_path / "model"
    persistence.save_directory(target, FORMAT, 2, "tiny", {"n": 1}, lambda d: (d / "data.txt").write_text("one"))

    def half_written(staging):
        (staging / "data.txt").write_text("two")
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError):
        persistence.save_directory(target, FORMAT, 2, "tiny", {"n": 2}, half_written)
    assert persistence.read_manifest(target, FORMAT, (2,)).config == {"n": 1}
    assert (target / "data.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_kill_between_the_two_renames_is_repaired_on_load(tmp_path, monkeypatch):
    target = tmp_path / "model"
    persistence.save_directory(target, FORMAT, 2, "tiny", {"n": 1}, lambda d: (d / "data.txt").write_text("one"))

    def killed(staged, final):
        raise KeyboardInterrupt  # the old version is already renamed aside

    monkeypatch.setattr(persistence, "_rename_staged", killed)
    with pytest.raises(KeyboardInterrupt), persistence.atomic_directory(target) as staging:
        (staging / "data.txt").write_text("two")
    assert not target.exists()
    monkeypatch.undo()
    assert persistence.resolve_directory(target) == target.absolute()
    assert persistence.read_manifest(target, FORMAT, (2,)).config == {"n": 1}


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMCAPTION_CACHE", str(tmp_path / "cache"))
    assert persistence.cache_dir("features", "x") == tmp_path / "cache" / "features" / "x"
    assert (tmp_path / "cache" / "features" / "x").is_dir()
