"""Index and embedder directories: the manifest, the previous release's layout, versions, kills.

The format-version-1 writers below reproduce what the previous release wrote (settings in the
SQLite ``settings`` table, ``index.json``, ``embedder.json``), from a live object's state, so the
test needs no stored fixture.
"""

import dataclasses
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeCaptioner, make_image
from kill_saves import kill_until_one_lands_mid_save
from roundtrip import assert_round_trip

from gemcaption.errors import ModelError
from gemcaption.retrieval.embedders import MeanTokenEmbedder, TfidfSvdEmbedder, embed_groups, load_embedder
from gemcaption.retrieval.retriever import Retriever

COLOURS = {
    "ruby": (230, 40, 30),
    "garnet": (100, 15, 10),
    "emerald": (20, 200, 40),
    "sapphire": (20, 30, 220),
    "tanzanite": (40, 20, 90),
    "peridot": (30, 110, 10),
}
CAPTIONS = [
    "a red oval ruby",
    "a blue sapphire ring",
    "a green emerald in gold",
    "two dogs on the grass",
    "a silver ring with a small diamond",
    "a black dog swims",
]
QUERIES = ["bright red stone", "dark blue", "green", "stone"]


@pytest.fixture
def images(tmp_path):
    return [make_image(tmp_path / f"{name}.png", rgb, i) for i, (name, rgb) in enumerate(COLOURS.items())]


def answers(retriever, images):
    return retriever.search(QUERIES, k=4), retriever.search(images[:2], k=3)


def same_answers(images):
    def compare(before, after):
        assert answers(after, images) == answers(before, images)
        assert after.ids == before.ids and [after.get(i) for i in after.ids] == [before.get(i) for i in before.ids]

    return compare


# -- the previous release's layout (format version 1) ---------------------------------------------
V1_SCHEMA = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    image TEXT,
    content_hash TEXT NOT NULL UNIQUE,
    caption TEXT NOT NULL,
    reference_captions TEXT NOT NULL,
    label TEXT
);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def v1_embedder_payload(embedder) -> dict:
    if isinstance(embedder, TfidfSvdEmbedder):
        return {
            "kind": "tfidf_svd",
            "dim": embedder.dim,
            "requested_dim": embedder.requested_dim,
            "ngram_max": embedder.ngram_max,
            "min_df": embedder.min_df,
            "seed": embedder.seed,
            "n_terms": len(embedder.vocabulary),
            "terms": sorted(embedder.vocabulary, key=embedder.vocabulary.get),
        }
    return {
        "kind": "mean_tokens",
        "dim": embedder.dim,
        "n_terms": len(embedder.words),
        "center": embedder.center,
        "words": embedder.words,
        "fitted": embedder.fitted,
    }


def write_v1_embedder(embedder, directory: Path) -> None:
    """``embedder.json`` + ``.npy`` files, as the previous release's ``save`` wrote them."""
    directory.mkdir(parents=True)
    (directory / "embedder.json").write_text(
        json.dumps(v1_embedder_payload(embedder), ensure_ascii=False), encoding="utf-8"
    )
    np.save(directory / "idf.npy", embedder.idf)
    if isinstance(embedder, TfidfSvdEmbedder) and embedder.components is not None:
        np.save(directory / "components.npy", embedder.components)
    if isinstance(embedder, MeanTokenEmbedder):
        np.save(directory / "vectors.npy", embedder.vectors)


def write_v1_index(retriever, directory: Path, format_version=1) -> None:
    """A whole index directory as the previous release wrote it."""
    import faiss

    directory.mkdir(parents=True)
    embedder_config = {k: v for k, v in v1_embedder_payload(retriever.embedder).items() if k not in ("terms", "words")}
    settings = {
        "format": "gemcaption-index",
        "format_version": format_version,
        "index_factory": retriever.index_factory,
        "search_params": retriever.search_params,
        "beam_width": retriever.beam_width,
        "use_references": retriever.use_references,
        "hybrid_weight": retriever.hybrid_weight,
        "batch_size": retriever.batch_size,
        "embedder": embedder_config,
        "captioner": {"model_dir": retriever.model_dir, "config": None},
        "next_id": retriever.metadata.next_id,
    }
    connection = sqlite3.connect(str(directory / "metadata.sqlite"))
    connection.executescript(V1_SCHEMA)
    connection.executemany(
        "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)",
        (
            (r.id, r.image, r.content_hash, r.caption, json.dumps(list(r.references)), r.label)
            for r in retriever.metadata.records.values()
        ),
    )
    connection.executemany("INSERT INTO settings VALUES (?, ?)", ((k, json.dumps(v)) for k, v in settings.items()))
    connection.commit()
    connection.close()
    write_v1_embedder(retriever.embedder, directory / "embedder")
    index = retriever.index
    np.save(directory / "text_ids.npy", index.table.ids)
    np.save(directory / "text_vectors.npy", index.table.vectors)
    faiss.write_index(index.faiss_index, str(directory / "index.faiss"))
    (directory / "index.json").write_text(
        json.dumps(
            {
                "dim": index.dim,
                "factory_setting": index.factory_setting,
                "factory": index.factory,
                "search_params_setting": index.search_params_setting,
                "search_params": index.search_params,
                "memory_budget": index.memory_budget,
                "hidden": sorted(index.hidden),
                "has_faiss_index": True,
            }
        )
    )
    if retriever.visual is not None:
        np.save(directory / "visual_ids.npy", retriever.visual.ids)
        np.save(directory / "visual_vectors.npy", retriever.visual.vectors)
        np.save(directory / "visual_mean.npy", retriever.visual_mean)


@pytest.mark.parametrize("hybrid", [0.0, 0.4])
def test_a_version_1_index_loads_and_answers_identically(images, tmp_path, hybrid):
    retriever = Retriever(FakeCaptioner(), hybrid_weight=hybrid, progress=False).build(images)
    retriever.remove([1])
    write_v1_index(retriever, tmp_path / "old")
    for record in list(retriever.metadata.records.values()):  # version 1 kept no file size and time
        retriever.metadata.replace(dataclasses.replace(record, size=None, mtime_ns=None))
    loaded = Retriever.load(tmp_path / "old", captioner=FakeCaptioner(), progress=False)
    assert loaded.format_version == 1
    same_answers(images)(retriever, loaded)
    assert loaded.add([images[1]]) == [6]  # next_id came from the old settings table
    loaded.save(tmp_path / "old")  # saving rewrites it in the current layout
    again = Retriever.load(tmp_path / "old", captioner=FakeCaptioner())
    assert again.format_version == 2 and (tmp_path / "old" / "manifest.json").is_file()
    assert not (tmp_path / "old" / "index.json").exists() and len(again) == 6


def test_the_index_manifest_holds_the_settings_and_checksums(images, tmp_path):
    retriever = Retriever(FakeCaptioner(), progress=False).build(images)
    assert_round_trip(
        retriever,
        lambda r: r.save(tmp_path / "idx"),
        lambda path: Retriever.load(path, captioner=FakeCaptioner()),
        same_answers(images),
    )
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert (manifest["format"], manifest["format_version"], manifest["kind"]) == ("gemcaption-index", 2, "retriever")
    assert manifest["config"]["index_factory"] == "auto" and manifest["config"]["vector_index"]["factory"] == "Flat"
    assert {"metadata.sqlite", "index.faiss", "text_vectors.npy", "embedder/manifest.json"} <= set(manifest["files"])
    with sqlite3.connect(tmp_path / "idx" / "metadata.sqlite") as connection:
        assert dict(connection.execute("SELECT key, value FROM settings")) == {"next_id": "6"}


def test_unknown_versions_and_damage_are_model_errors_naming_them(images, tmp_path):
    retriever = Retriever(FakeCaptioner(), progress=False).build(images)
    retriever.save(tmp_path / "idx")
    manifest_path = tmp_path / "idx" / "manifest.json"
    original = manifest_path.read_bytes()
    manifest_path.write_text(json.dumps({**json.loads(original), "format_version": 3}))
    with pytest.raises(ModelError, match="version 3 .*upgrade gemcaption"):
        Retriever.load(tmp_path / "idx")
    manifest_path.write_bytes(original)
    assert len(Retriever.load(tmp_path / "idx")) == 6
    vectors = tmp_path / "idx" / "text_vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:-4] + b"\0\0\0\1")
    with pytest.raises(ModelError, match="damaged: .*text_vectors.npy"):
        Retriever.load(tmp_path / "idx")
    write_v1_index(retriever, tmp_path / "future", format_version=7)
    with pytest.raises(ModelError, match="version 7"):
        Retriever.load(tmp_path / "future")


def test_a_version_1_embedder_loads_and_embeds_identically(tmp_path):
    tfidf = TfidfSvdEmbedder(dim=4, ngram_max=2).fit(CAPTIONS)
    tokens = MeanTokenEmbedder(["a", "red", "ruby", "dog"], np.random.default_rng(0).normal(size=(4, 3))).fit(CAPTIONS)
    for name, embedder in (("tfidf", tfidf), ("tokens", tokens)):
        write_v1_embedder(embedder, tmp_path / name)
        loaded = load_embedder(tmp_path / name)
        np.testing.assert_array_equal(loaded.transform(CAPTIONS), embedder.transform(CAPTIONS))
        assert loaded.get_config() == embedder.get_config()


def test_embedder_round_trip_and_unknown_version(tmp_path):
    embedder = TfidfSvdEmbedder(dim=3).fit(CAPTIONS)
    loaded = assert_round_trip(
        embedder,
        lambda e: e.save(tmp_path / "emb"),
        load_embedder,
        lambda a, b: np.array_equal(a.transform(CAPTIONS), b.transform(CAPTIONS)),
    )
    assert loaded.vocabulary == embedder.vocabulary
    manifest_path = tmp_path / "emb" / "manifest.json"
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "format_version": 9}))
    with pytest.raises(ModelError, match="gemcaption-embedder format version 9"):
        load_embedder(tmp_path / "emb")


def test_embed_groups_is_the_normalised_mean_of_each_group():
    embedder = TfidfSvdEmbedder(dim=4).fit(CAPTIONS)
    groups = [["a red oval ruby"], ["a blue sapphire ring", "a green emerald in gold", "a black dog swims"]]
    vectors = embed_groups(embedder, groups)
    flat = embedder.transform(groups[1])
    expected = flat.mean(axis=0) / np.linalg.norm(flat.mean(axis=0))
    np.testing.assert_allclose(vectors[0], embedder.transform(groups[0])[0], atol=1e-6)
    np.testing.assert_allclose(vectors[1], expected, atol=1e-6)
    assert embed_groups(embedder, []).shape == (0, 4)
    with pytest.raises(ValueError, match="at least one caption"):
        embed_groups(embedder, [["a ruby"], []])


# -- kills during a save ---------------------------------------------------------------------------
INDEX_SAVER = """
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

EMBEDDER_SAVER = """
import sys
from gemcaption.retrieval.embedders import TfidfSvdEmbedder
target, first, second = sys.argv[1:]
embedders = [TfidfSvdEmbedder(dim=4).fit(first.split("|")), TfidfSvdEmbedder(dim=4).fit(second.split("|"))]
print("READY", flush=True)
while True:
    for embedder in embedders:
        embedder.save(target)
"""


def test_a_kill_during_an_index_save_leaves_a_loadable_index(images, tmp_path):
    target = tmp_path / "idx"
    small = Retriever(FakeCaptioner(), progress=False).build(images[:3])
    large = Retriever(FakeCaptioner(), progress=False).build(images)
    expected = {3: small.search(QUERIES, k=6), 6: large.search(QUERIES, k=6)}
    small.save(target)

    def loads_one_of_the_two() -> None:
        loaded = Retriever.load(target)
        assert len(loaded) in expected and loaded.search(QUERIES, k=6) == expected[len(loaded)]

    interrupted = kill_until_one_lands_mid_save(
        INDEX_SAVER, [*images, str(target)], target, loads_one_of_the_two, seed=10
    )
    assert any(interrupted)  # at least one kill hit a save half-way


def test_a_kill_during_an_embedder_save_leaves_a_loadable_embedder(tmp_path):
    target = tmp_path / "emb"
    first, second = CAPTIONS[:3], CAPTIONS[3:]
    vocabularies = [TfidfSvdEmbedder(dim=4).fit(texts).vocabulary for texts in (first, second)]
    TfidfSvdEmbedder(dim=4).fit(first).save(target)

    def loads_one_of_the_two() -> None:
        assert load_embedder(target).vocabulary in vocabularies

    arguments = [str(target), "|".join(first), "|".join(second)]
    interrupted = kill_until_one_lands_mid_save(
        EMBEDDER_SAVER, arguments, target, loads_one_of_the_two, seed=11, high=0.2
    )
    assert any(interrupted)
