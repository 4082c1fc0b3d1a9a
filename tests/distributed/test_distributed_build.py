"""Distributed index build (gemcaption.distributed): the same index as a single-process build, on
Dask clusters of two workers; a failed shard is reported and a re-run computes only it."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import COLOURS, SHAPES, FakeCaptioner, draw

pytest.importorskip("distributed", reason='needs the extra: pip install "gemcaption[distributed]"')

from distributed import WorkerPlugin

import gemcaption.distributed.build as build_module
from gemcaption.captioning.captioner import Captioner
from gemcaption.distributed import build_index
from gemcaption.distributed.build import work_folder
from gemcaption.retrieval.retriever import Retriever

PER_KIND = 30  # 4 colours x 2 shapes x 30 = 240 drawn images, plus a duplicate and an unreadable file


def write_collection(root: Path) -> tuple[list[str], list[list[str]]]:
    root.mkdir(parents=True)
    paths, references = [], []
    for i in range(PER_KIND):
        for colour in COLOURS:
            for shape in SHAPES:
                path = root / f"{colour}_{shape}_{i}.png"
                draw(colour, shape, size=16 + i % 10, shift=i // 10).save(path)
                paths.append(str(path))
                references.append([f"a {colour} {shape}", f"{shape} {colour} size{i % 10} shift{i // 10}"])
    (root / "broken.png").write_bytes(b"not a png")
    shutil.copy(paths[3], root / "copy.png")  # same content as an image of the first shard
    for name in ("broken.png", "copy.png"):
        paths.insert(150, str(root / name))
        references.insert(150, ["a red square"])
    return paths, references


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("collection")
    paths, references = write_collection(root / "images")
    model = root / "model"
    FakeCaptioner().save(model)
    return paths, references, model


@pytest.fixture(scope="module")
def reference_index(collection):
    paths, references, model = collection
    retriever = Retriever(FakeCaptioner(), model_dir=model, index_factory="Flat", progress=False)
    with pytest.warns(UserWarning, match="broken.png"):
        retriever.build(paths, captions=references)
    return retriever


@pytest.fixture
def in_process_cluster(monkeypatch):
    """Two single-thread workers in this process, so the fake captioner can stand in for the model."""
    from distributed import LocalCluster

    monkeypatch.setattr(Captioner, "load", classmethod(lambda cls, path, **kw: FakeCaptioner.load(path)))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def queries(paths: list[str]) -> list[str]:
    return ["a red circle", "blue square size3", "green shift2", "yellow circle size1 shift0", *paths[::37]]


def assert_same_answers(built: Retriever, reference: Retriever, paths: list[str]) -> None:
    assert len(built) == len(reference) and built.ids == reference.ids
    for item_id in reference.ids:
        assert built.get(item_id) == reference.get(item_id)
    for query in queries(paths):
        got, want = built.search(query, k=10), reference.search(query, k=10)
        assert [h.id for h in got] == [h.id for h in want], query
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], rtol=1e-5, atol=1e-6)


def distributed_retriever(model) -> Retriever:
    return Retriever(None, model_dir=model, index_factory="Flat", progress=False)


def test_distributed_build_answers_like_the_single_process_build(
    collection, reference_index, in_process_cluster, tmp_path
):
    paths, references, model = collection
    out = tmp_path / "index"
    with pytest.warns(UserWarning, match="broken.png"):
        report = build_index(
            distributed_retriever(model), paths, out, captions=references, scheduler=in_process_cluster, shard_size=64
        )
    assert (report.shards, report.computed, report.skipped, report.failed) == (4, 4, 0, [])
    assert report.ids[150] is not None and report.ids[151] is None  # copy.png: an earlier image's id; broken.png
    assert report.ids[150] == report.ids[3]
    assert not work_folder(out).exists()
    assert_same_answers(Retriever.load(out, FakeCaptioner()), reference_index, paths)


def test_a_pre_fitted_embedder_and_a_hybrid_weight_give_the_same_index_too(collection, in_process_cluster, tmp_path):
    paths, references, model = collection
    texts = [f"a {colour} {shape} stone" for colour in COLOURS for shape in SHAPES] + ["bright dark shift0 size2"]
    settings = dict(model_dir=model, index_factory="Flat", hybrid_weight=0.3, progress=False)
    reference = Retriever(FakeCaptioner(), **settings)
    with pytest.warns(UserWarning, match="broken.png"):
        reference.build(paths, captions=references, fit_texts=texts)
    with pytest.warns(UserWarning, match="broken.png"):
        report = build_index(
            Retriever(None, **settings),
            paths,
            tmp_path / "index",
            captions=references,
            fit_texts=texts,
            scheduler=in_process_cluster,
            shard_size=100,
        )
    assert report.complete and report.computed == 3
    built = Retriever.load(tmp_path / "index", FakeCaptioner())
    np.testing.assert_allclose(built.visual_mean, reference.visual_mean, rtol=1e-6)
    assert_same_answers(built, reference, paths)


def test_an_ivf_pq_factory_builds_the_on_disk_sharded_index(collection, reference_index, in_process_cluster, tmp_path):
    from gemcaption.retrieval.sharded_index import ShardedIndex

    paths, references, model = collection
    retriever = Retriever(None, model_dir=model, index_factory="IVF4,PQ1x4", progress=False)
    with pytest.warns(UserWarning, match="broken.png"):
        report = build_index(retriever, paths, tmp_path / "index", captions=references, scheduler=in_process_cluster)
    assert report.complete and not work_folder(tmp_path / "index").exists()
    built = Retriever.load(tmp_path / "index", FakeCaptioner())
    assert isinstance(built.index, ShardedIndex) and len(built.index) == len(reference_index)
    assert built.ids == reference_index.ids
    for query in queries(paths):  # equal scores (vectors re-scored from float16), ties in any order
        got, want = built.search(query, k=10), reference_index.search(query, k=10)
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=2e-3, err_msg=query)


def test_a_failed_shard_is_reported_and_a_rerun_computes_only_it(
    collection, reference_index, in_process_cluster, tmp_path, monkeypatch
):
    paths, references, model = collection
    out = tmp_path / "index"
    log = tmp_path / "calls.txt"  # the task is serialised to the workers: it reports through files
    real_run_shard = build_module.run_shard

    def failing_once(job):
        with open(log, "a") as handle:
            handle.write(job.name + "\n")
        marker = log.with_name("failed")
        if job.name.startswith("shard-000000128-") and not marker.exists():
            marker.touch()
            raise OSError("disk full")
        return real_run_shard(job)

    monkeypatch.setattr(build_module, "run_shard", failing_once)
    first = build_index(
        distributed_retriever(model), paths, out, captions=references, scheduler=in_process_cluster, shard_size=64
    )
    assert not first.complete and first.computed == 3
    assert [(name[:15], error) for name, error in first.failed] == [("shard-000000128", "OSError: disk full")]
    assert not out.exists()
    done = sorted(p.name for p in work_folder(out).glob("shard-*.json"))
    assert len(done) == 3

    log.unlink()
    with pytest.warns(UserWarning, match="broken.png"):
        second = build_index(
            distributed_retriever(model), paths, out, captions=references, scheduler=in_process_cluster, shard_size=64
        )
    assert [name[:15] for name in log.read_text().split()] == ["shard-000000128"]
    assert (second.computed, second.skipped, second.failed) == (1, 3, [])
    assert not work_folder(out).exists()
    assert_same_answers(Retriever.load(out, FakeCaptioner()), reference_index, paths)


def test_cli_builds_on_a_scheduler_and_reports_failed_shards(
    collection, reference_index, in_process_cluster, tmp_path, capsys, monkeypatch
):
    from gemcaption.cli import main

    paths, _, model = collection
    folder = str(Path(paths[0]).parent)
    out = tmp_path / "index"
    command = ["index", "build", "--model", str(model), "--images", folder, "--out", str(out), "--factory", "Flat"]
    command += ["--distributed", "--scheduler", in_process_cluster, "--shard-size", "100"]

    def broken(job):
        raise OSError("disk full")

    monkeypatch.setattr(build_module, "run_shard", broken)
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "gemcaption: 3 of 3 shards failed; run the same command again to compute only those" in err
    assert err.count("OSError: disk full") >= 3 and not out.exists()

    monkeypatch.undo()
    monkeypatch.setattr(Captioner, "load", classmethod(lambda cls, path, **kw: FakeCaptioner.load(path)))
    assert main(command) == 1  # broken.png is reported, the rest indexed
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "broken.png" in captured.err and "3 shards: 3 computed, 0 already done" in captured.err
    built = Retriever.load(out, FakeCaptioner())
    assert len(built) == len(reference_index)
    single = tmp_path / "single"
    assert main(command[: command.index("--distributed")] + ["--out", str(single)]) == 1
    capsys.readouterr()
    expected = Retriever.load(single, FakeCaptioner())
    for query in queries(paths):
        assert [h.id for h in built.search(query, k=10)] == [h.id for h in expected.search(query, k=10)]


def test_cli_without_dask_names_the_extra(collection, tmp_path, capsys, monkeypatch):
    from gemcaption.cli import main

    paths, _, model = collection
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ImportError
    out = tmp_path / "index"
    code = main(["index", "build", "--model", str(model), "--images", paths[0], "--out", str(out), "--distributed"])
    assert code == 2 and not out.exists()
    assert capsys.readouterr().err.strip().splitlines() == [
        'gemcaption: error: distributed builds need Dask: pip install "gemcaption[distributed]"'
    ]


@pytest.mark.slow
def test_worker_processes_with_a_real_captioner_and_a_killed_worker(tmp_path):
    """Two worker processes load a tiny trained captioner; one dies in its first shard: Dask runs that
    shard again on a restarted worker and the index equals the single-process build."""
    import cloudpickle
    from distributed import Client, LocalCluster
    from fakes import TINY_CAPTIONER, write_shapes

    from gemcaption.data.loaders import Sample

    rows = write_shapes(tmp_path / "images", per_kind=4, size=64)
    samples = [Sample(image=p, captions=tuple(c), label=label, split="train") for p, c, label in rows]
    captioner = Captioner("transformer", **TINY_CAPTIONER)
    captioner.fit(samples, epochs=2, batch_size=8, learning_rate=1e-2, verbose=0, space=False)
    model = tmp_path / "model"
    captioner.save(model)
    reference = Retriever(captioner, model_dir=model, index_factory="Flat", progress=False).build(samples)

    marker = tmp_path / "killed"

    def kill_once():  # run in each worker: its first shard after the marker is missing kills the process
        import os

        import gemcaption.distributed.tasks as tasks

        real = tasks.run_shard

        def run(job):
            if job.name.startswith("shard-000000008-") and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)
            return real(job)

        tasks.run_shard = run

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(_RunAtStart(kill_once))
        report = build_index(
            Retriever(None, model_dir=model, index_factory="Flat", progress=False),
            samples,
            tmp_path / "index",
            scheduler=cluster.scheduler_address,
            shard_size=8,
        )
    assert marker.exists() and report.complete and report.computed == 4
    assert_same_answers(Retriever.load(tmp_path / "index", captioner), reference, [s.image for s in samples])


class _RunAtStart(WorkerPlugin):
    """A Dask worker plugin running ``function`` in every worker process, restarted ones too."""

    name = "gemcaption-test-run-at-start"

    def __init__(self, function):
        self.function = function

    def setup(self, worker):
        self.function()
