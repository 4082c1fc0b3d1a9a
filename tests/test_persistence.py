"""gemcaption.persistence: manifests (format, version, checksums), atomic files and directories."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from gemcaption import locking, persistence
from gemcaption.errors import ConflictError, LockedError, ModelError

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


# -- concurrent writers (issue 12) -----------------------------------------------------------------
def write_data(text):
    return lambda staging: (staging / "data.txt").write_text(text)


HOLDER = """
import sys, time
from gemcaption.locking import lock_directory
with lock_directory(sys.argv[1]):
    print("LOCKED", flush=True)
    time.sleep(120)
"""


def test_a_locked_directory_times_out_naming_the_writers_pid(tmp_path):
    target = tmp_path / "thing"
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "LOCKED"
        assert locking.holder(target) == child.pid
        started = time.monotonic()
        message = rf"^index .*thing is being written by PID {child.pid} \(waited 0\.2 s\)$"
        with pytest.raises(LockedError, match=message), persistence.lock_directory(target, 0.2, "index"):
            pass
        assert time.monotonic() - started >= 0.2
        with pytest.raises(LockedError, match=f"PID {child.pid}"):
            persistence.save_directory(target, FORMAT, 2, "tiny", {}, write_data("x"), timeout=0)
        assert not target.exists()
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    persistence.save_directory(target, FORMAT, 2, "tiny", {}, write_data("x"), timeout=0)  # the kernel freed it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing"]  # lock file removed on release


def test_the_lock_is_reentrant_in_a_thread_and_excludes_other_threads(tmp_path):
    target = tmp_path / "thing"
    order = []

    def other():
        with persistence.lock_directory(target, timeout=10):
            order.append("other")

    with persistence.lock_directory(target):
        with persistence.lock_directory(target, timeout=0):  # the same thread again: no wait
            persistence.save_directory(target, FORMAT, 2, "tiny", {}, write_data("x"))
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        order.append("me")
    thread.join(10)
    assert order == ["me", "other"]


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_save_keeps_a_live_writers_staging_and_removes_a_dead_ones(tmp_path):
    target = tmp_path / "thing"
    persistence.save_directory(target, FORMAT, 2, "tiny", {}, write_data("one"))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live = tmp_path / f".thing.staging-{sleeper.pid}-abc"
        dead = tmp_path / f".thing.staging-{dead_pid()}-def"
        old = tmp_path / f".thing.staging-{sleeper.pid}-ghi"
        for folder in (live, dead, old):
            folder.mkdir()
            (folder / "data.txt").write_text("half")
        os.utime(old, (time.time() - 2 * persistence.STALE_SECONDS,) * 2)
        persistence.save_directory(target, FORMAT, 2, "tiny", {}, write_data("two"))
        assert live.is_dir() and not dead.exists() and not old.exists()
        assert (target / "data.txt").read_text() == "two"
    finally:
        sleeper.kill()
        sleeper.wait()
    persistence.resolve_directory(target)  # the next load removes it once its writer is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing"]


def test_each_save_counts_a_generation_and_a_stale_one_is_refused(tmp_path):
    target = tmp_path / "thing"
    for expected in (1, 2):
        persistence.save_directory(target, FORMAT, 2, "tiny", {}, write_data(str(expected)))
        assert persistence.read_generation(target) == expected
        assert persistence.read_manifest(target, FORMAT, (2,)).generation == expected
    with pytest.raises(ConflictError, match=r"changed on disk since it was loaded \(generation 1, now 2"):
        persistence.save_directory(target, FORMAT, 2, "tiny", {}, write_data("lost"), expected_generation=1)
    assert (target / "data.txt").read_text() == "2"
    persistence.save_directory(target, FORMAT, 2, "tiny", {}, write_data("3"), expected_generation=2)
    assert persistence.read_generation(target) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing"]


def test_a_manifest_without_a_generation_reads_as_generation_0(tmp_path):
    folder = saved(tmp_path)
    payload = json.loads((folder / persistence.MANIFEST_FILE).read_text())
    del payload["generation"]
    (folder / persistence.MANIFEST_FILE).write_text(json.dumps(payload))
    assert persistence.read_manifest(folder, FORMAT, (2,)).generation == 0
    assert persistence.read_generation(folder) == 0
    (tmp_path / "plain").mkdir()
    assert persistence.read_generation(tmp_path / "plain") == 0
    with pytest.raises(ModelError, match="no such directory"):
        persistence.read_generation(tmp_path / "absent")


def test_a_reader_waits_for_a_writer_between_its_two_renames(tmp_path, monkeypatch):
    target = tmp_path / "thing"
    persistence.save_directory(target, FORMAT, 2, "tiny", {"n": 1}, write_data("one"))
    seen = []
    renamed = threading.Event()

    def slow_rename(staged, final):
        renamed.set()
        time.sleep(0.5)  # the old version is aside, the new one not in place yet
        os.rename(staged, final)

    monkeypatch.setattr(persistence, "_rename_staged", slow_rename)
    writer = threading.Thread(
        target=persistence.save_directory, args=(target, FORMAT, 2, "tiny", {"n": 2}, write_data("two"))
    )
    writer.start()
    assert renamed.wait(10) and not target.exists()
    seen.append(persistence.read_consistently(target, lambda d: (d / "data.txt").read_text()))
    writer.join(10)
    assert seen == ["two"]  # not the backup put back under the writer's feet
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing"]
