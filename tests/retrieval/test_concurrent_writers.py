"""Issue 12, concurrent writers: two processes adding to one index lose nothing, a reader never sees
a half-written index while a writer saves, and a killed writer leaves nothing behind after a load.

The writers are real processes (``python -c``) that wait at a file barrier so that they overlap."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import FakeCaptioner, make_image
from kill_saves import TESTS, kill_while_saving, leftovers, random_delays

from gemcaption import persistence
from gemcaption.cli import main
from gemcaption.retrieval.retriever import Retriever

BASE, EACH = 72, 5

BARRIER = """
import os, sys, time
from pathlib import Path

def wait_for_all(barrier, count):
    Path(barrier, str(os.getpid())).touch()
    while len(list(Path(barrier).iterdir())) < int(count):
        time.sleep(0.01)
"""

CLI_WRITER = (
    BARRIER
    + """
import fakes
import gemcaption.captioning.captioner as captioner_module

class SlowCaptioner(fakes.FakeCaptioner):
    def caption(self, images, **kwargs):
        time.sleep(0.5)  # a window between load and save as wide as a real model's
        return super().caption(images, **kwargs)

captioner_module.Captioner.load = SlowCaptioner.load
barrier, count, *argv = sys.argv[1:]
wait_for_all(barrier, count)
from gemcaption import persistence
from gemcaption.cli import main
sys.exit(main(argv))
"""
)

LIBRARY_WRITER = (
    BARRIER
    + """
from fakes import FakeCaptioner
from gemcaption.errors import ConflictError
from gemcaption.retrieval.retriever import Retriever

barrier, count, mode, index, *images = sys.argv[1:]
if mode == "edit":
    wait_for_all(barrier, count)
    with Retriever.edit(index, FakeCaptioner(), progress=False) as retriever:
        ids = retriever.add(images)
else:
    for attempt in range(5):
        retriever = Retriever.load(index, FakeCaptioner(), progress=False)
        ids = retriever.add(images)
        if attempt == 0:
            wait_for_all(barrier, count)  # both writers loaded the same version before either saves
        try:
            retriever.save(index)
            break
        except ConflictError as exc:
            print(exc, file=sys.stderr)
            if mode == "naive":
                sys.exit(3)
print(" ".join(map(str, ids)))
"""
)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def run_together(code: str, argvs: list[list[str]], barrier: Path, timeout: float = 120) -> list:
    """Start one process per argv (they meet at ``barrier``); their CompletedProcess-like results."""
    barrier.mkdir()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(barrier), str(len(argvs)), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for argv in argvs
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=timeout)
        results.append((child.returncode, out, err))
    return results


@pytest.fixture
def index_of_72(tmp_path):
    """A saved index of 72 images (fake captioner saved as its model) and two batches of 5 new images."""
    FakeCaptioner().save(tmp_path / "model")
    folder = tmp_path / "images"
    folder.mkdir()
    images = [make_image(folder / f"{i:03d}.png", (40 + 2 * i, 250 - 2 * i, 30 + i), i) for i in range(BASE + 2 * EACH)]
    retriever = Retriever(FakeCaptioner(), model_dir=tmp_path / "model", progress=False).build(images[:BASE])
    retriever.save(tmp_path / "idx")
    return tmp_path / "idx", images[BASE : BASE + EACH], images[BASE + EACH :]


def test_two_concurrent_cli_index_adds_keep_every_entry(index_of_72, tmp_path):
    index, first, second = index_of_72
    runs = run_together(
        CLI_WRITER, [["-q", "index", "add", str(index), *batch] for batch in (first, second)], tmp_path / "barrier"
    )
    assert [code for code, _, _ in runs] == [0, 0], [err for _, _, err in runs]
    printed = [int(line.split("\t")[0]) for _, out, _ in runs for line in out.splitlines()]
    assert len(printed) == 2 * EACH and len(set(printed)) == 2 * EACH
    loaded = Retriever.load(index)
    assert len(loaded) == BASE + 2 * EACH
    assert set(printed) <= set(loaded.ids)
    assert {loaded.get(i).image for i in printed} == {str(Path(p).absolute()) for p in first + second}
    assert leftovers(index, lock=True) == []


def test_two_processes_editing_through_the_library_keep_every_entry(index_of_72, tmp_path):
    index, first, second = index_of_72
    runs = run_together(LIBRARY_WRITER, [["edit", str(index), *batch] for batch in (first, second)], tmp_path / "b")
    assert [code for code, _, _ in runs] == [0, 0], [err for _, _, err in runs]
    ids = [int(i) for _, out, _ in runs for i in out.split()]
    loaded = Retriever.load(index)
    assert len(loaded) == BASE + 2 * EACH and set(ids) <= set(loaded.ids) and len(set(ids)) == 2 * EACH


def test_load_add_save_in_two_processes_never_loses_silently(index_of_72, tmp_path):
    """Both load the same version; the second save is refused with a clear error instead of
    overwriting the first writer's images (and a writer that retries on the error keeps both)."""
    index, first, second = index_of_72
    runs = run_together(LIBRARY_WRITER, [["naive", str(index), *batch] for batch in (first, second)], tmp_path / "b")
    codes = sorted(code for code, _, _ in runs)
    assert codes == [0, 3], [err for _, _, err in runs]
    refused = next(err for code, _, err in runs if code == 3)
    assert "changed on disk since it was loaded" in refused and "generation 1, now 2" in refused
    winner = [int(i) for code, out, _ in runs if code == 0 for i in out.split()]
    loaded = Retriever.load(index)
    assert len(loaded) == BASE + EACH and set(winner) <= set(loaded.ids)

    runs = run_together(
        LIBRARY_WRITER, [["retry", str(index), *batch] for batch in (first, second)], tmp_path / "b2"
    )  # the winner's images are already in: it adds the 5 of the loser again, the loser adds them
    assert [code for code, _, _ in runs] == [0, 0], [err for _, _, err in runs]
    assert len(Retriever.load(index)) == BASE + 2 * EACH


HOLDER = """
import sys, time
from gemcaption.locking import lock_directory
with lock_directory(sys.argv[1]):
    print("LOCKED", flush=True)
    time.sleep(120)
"""


def test_index_add_gives_up_after_wait_naming_the_writer(index_of_72, capsys, monkeypatch):
    import gemcaption.captioning.captioner

    monkeypatch.setattr(gemcaption.captioning.captioner.Captioner, "load", FakeCaptioner.load)
    index, first, _ = index_of_72
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(index)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert child.stdout.readline().strip() == "LOCKED"
        started = time.monotonic()
        assert main(["-q", "index", "add", str(index), first[0], "--wait", "0.3"]) == 2
        assert 0.3 <= time.monotonic() - started < 10
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gemcaption: error: index ")
        assert f"is being written by PID {child.pid} (waited 0.3 s)" in err[0]
        assert main(["-q", "index", "remove", str(index), "0", "--wait", "0"]) == 2
        assert len(Retriever.load(index)) == BASE
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert main(["-q", "index", "add", str(index), first[0], "--wait", "0"]) == 0  # a dead holder blocks nobody
    assert len(Retriever.load(index)) == BASE + 1 and leftovers(index, lock=True) == []


SAVER = """
import sys
from fakes import FakeCaptioner
from gemcaption.retrieval.retriever import Retriever
*paths, target = sys.argv[1:]
small = Retriever(FakeCaptioner(), progress=False).build(paths[:3])
large = Retriever(FakeCaptioner(), progress=False).build(paths)
print("READY", flush=True)
while True:
    large.save(target)
    small.save(target)
"""


def test_readers_never_see_a_half_written_index_while_another_process_saves(index_of_72, tmp_path):
    _, images, _ = index_of_72
    images = images + [make_image(tmp_path / "extra.png", (200, 200, 20), 99)]
    target = tmp_path / "busy"
    expected = {n: Retriever(FakeCaptioner(), progress=False).build(images[:n]).search("red", k=6) for n in (3, 6)}
    Retriever(FakeCaptioner(), progress=False).build(images[:3]).save(target)
    writer = subprocess.Popen(
        [sys.executable, "-c", SAVER, *images, str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env()
    )
    try:
        assert writer.stdout.readline().strip() == b"READY"
        seen: dict[int, int] = {}
        deadline = time.monotonic() + 20
        while (len(seen) < 2 or sum(seen.values()) < 20) and time.monotonic() < deadline:
            loaded = Retriever.load(target)  # raises if it ever reads a mix of two versions
            assert loaded.search("red", k=6) == expected[len(loaded)]
            seen[len(loaded)] = seen.get(len(loaded), 0) + 1
        assert writer.poll() is None, writer.stderr.read().decode()[-2000:]  # readers never broke its saves
        assert set(seen) == {3, 6}
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()
        writer.stderr.close()
    Retriever.load(target)
    assert leftovers(target, lock=True) == []


def test_a_killed_writer_leaves_the_previous_version_and_no_litter_after_the_next_load(index_of_72, tmp_path):
    _, images, _ = index_of_72
    target = tmp_path / "killed"
    Retriever(FakeCaptioner(), progress=False).build(images[:3]).save(target)
    for delay in random_delays(2, seed=21, high=0.3):
        kill_while_saving(SAVER, [*images, str(target)], delay)
        assert len(Retriever.load(target)) in (3, 5)
        assert leftovers(target, lock=True) == []


def test_a_loaded_retriever_knows_its_generation_and_refuses_a_stale_save(index_of_72):
    from gemcaption.errors import ConflictError

    index, first, second = index_of_72
    assert Retriever(FakeCaptioner()).generation is None
    stale, fresh = Retriever.load(index, FakeCaptioner()), Retriever.load(index, FakeCaptioner())
    assert stale.generation == fresh.generation == 1
    fresh.add(first)
    fresh.save(index)
    assert fresh.generation == 2 and persistence.read_generation(index) == 2
    stale.add(second)
    with pytest.raises(ConflictError, match="changed on disk since it was loaded"):
        stale.save(index)
    with Retriever.edit(index, FakeCaptioner()) as editing:
        editing.add(second)
    assert len(Retriever.load(index)) == BASE + 2 * EACH and Retriever.load(index).generation == 3


def test_index_add_to_a_missing_index_is_one_error_and_leaves_no_lock_file(tmp_path, capsys):
    image = make_image(tmp_path / "one.png", (200, 30, 30), 1)
    assert main(["-q", "index", "add", str(tmp_path / "nothing"), image]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing: no such directory" in err[0]
    assert main(["-q", "index", "add", str(tmp_path / "nothing"), image, "--wait", "-1"]) == 2
    assert "--wait must be at least 0" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png"]
