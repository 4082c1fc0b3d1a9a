"""A mutation fuzz over saved directories: a damaged captioner, classifier model, embedder or index
gives one ModelError (``damaged: FILE`` or naming the directory), never another exception.

Each file of a tiny saved directory is truncated, zeroed, bit-flipped or deleted; the manifest and
config fields are edited to wrong types. "Consistent" variants also rewrite the manifest checksums
after the damage (a directory assembled by hand), so the checks after the checksums are exercised:
those may load (a flipped float is still a float) but must never raise anything but ModelError.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeCaptioner, make_image, write_shapes

from gemcaption.errors import ModelError
from gemcaption.persistence import MANIFEST_FILE, file_sha256

MUTATIONS = ("truncate", "zero", "flip", "delete")


def mutate(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero":
        path.write_bytes(bytes(len(data)))
    elif how == "flip":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(flipped))
    else:
        path.unlink()


def rechecksum(directory: Path) -> None:
    """Rewrite every manifest's checksums (deepest first) to match the files as they are now."""
    for manifest_path in sorted(directory.rglob(MANIFEST_FILE), key=lambda p: -len(p.parts)):
        try:
            manifest = json.loads(manifest_path.read_text())
            files = manifest["files"]
        except (ValueError, KeyError, TypeError):
            continue
        base = manifest_path.parent
        manifest["files"] = {rel: file_sha256(base / rel) for rel in files if (base / rel).is_file()}
        manifest_path.write_text(json.dumps(manifest))


def expect_clean_failure(load, directory: Path, may_load: bool = False) -> None:
    try:
        load(directory)
    except ModelError as exc:
        message = str(exc)
        assert message.startswith("damaged:") or str(directory) in message, message
        assert "\n" not in message.strip(), message
    else:
        assert may_load, f"loaded a damaged directory without complaint: {directory}"


def fuzz(saved: Path, load, tmp_path: Path, skip=(), consistent_may_load=lambda rel, how: True) -> int:
    """Every mutation of every file of ``saved``, plain and re-checksummed; returns the cases tried."""
    cases = 0
    files = sorted(p.relative_to(saved) for p in saved.rglob("*") if p.is_file() and p.name not in skip)
    for rel in files:
        for how in MUTATIONS:
            for consistent in (False, True):
                if consistent and rel.name == MANIFEST_FILE:
                    continue
                target = tmp_path / f"case{cases}"
                shutil.copytree(saved, target)
                mutate(target / rel, how)
                if consistent:
                    rechecksum(target)
                may_load = consistent and (how == "flip" or rel.name != MANIFEST_FILE) and consistent_may_load(rel, how)
                # a plain mutation of a file the manifest lists must be caught by its checksum
                expect_clean_failure(load, target, may_load=may_load or rel.name == "COMPLETE")
                shutil.rmtree(target)
                cases += 1
    return cases


def edit_manifest(saved: Path, load, tmp_path: Path, config_keys) -> int:
    """Top-level manifest fields and ``config`` fields set to values of the wrong type."""
    cases = 0
    original = json.loads((saved / MANIFEST_FILE).read_text())
    edits = [{"files": 5}, {"files": ["a"]}, {"config": [1]}, {"config": "x"}, {"format_version": "2"}, {"kind": 7}]
    edits += [{"config": {**original["config"], key: value}} for key in config_keys for value in ("x", [1], None, -3)]
    for edit in edits:
        target = tmp_path / f"edit{cases}"
        shutil.copytree(saved, target)
        (target / MANIFEST_FILE).write_text(json.dumps({**original, **edit}))
        expect_clean_failure(load, target, may_load=True)
        shutil.rmtree(target)
        cases += 1
    return cases


# -- the directories ---------------------------------------------------------------------------------
COLOURS = np.array([[210, 40, 40], [40, 190, 60], [50, 60, 210]])


def pixels(per_class=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), per_class)
    x = COLOURS[y][:, None, None, :] + rng.normal(0, 30, (len(y), 16, 16, 3))
    return np.clip(x, 0, 255).astype(np.uint8), y


@pytest.mark.parametrize("kind", ["rf", "svm", "logreg"])
def test_damaged_classifier_models(kind, tmp_path):
    from gemcaption.classification.base import load_model_dir
    from gemcaption.classification.baselines import DescriptorClassifier

    x, y = pixels()
    model = DescriptorClassifier(kind, features=("handcrafted",), image_size=16, n_estimators=3, views=("identity",))
    model.fit(x, y, 3)
    model.save(tmp_path / "saved")

    def load(directory):
        loaded = load_model_dir(directory)
        loaded.predict_proba(x[:2])  # what loads must also answer

    assert fuzz(tmp_path / "saved", load, tmp_path) > 10
    edit_manifest(tmp_path / "saved", load, tmp_path, ["constructor", "num_classes"])


def test_damaged_embedders(tmp_path):
    from gemcaption.retrieval.embedders import TfidfSvdEmbedder, load_embedder

    captions = ["a red ruby", "a blue sapphire ring", "a green emerald", "two dogs", "a red ring", "blue water"]
    TfidfSvdEmbedder(dim=3).fit(captions).save(tmp_path / "saved")

    def load(directory):
        load_embedder(directory).transform(["a red ring"])

    assert fuzz(tmp_path / "saved", load, tmp_path) > 10
    edit_manifest(tmp_path / "saved", load, tmp_path, ["requested_dim", "ngram_max", "dim"])


def test_damaged_indexes(tmp_path):
    from gemcaption.retrieval.retriever import Retriever

    rgb = [(230, 40, 30), (20, 200, 40), (20, 30, 220), (100, 15, 10)]
    images = [make_image(tmp_path / f"{i}.png", colour, i) for i, colour in enumerate(rgb)]
    Retriever(FakeCaptioner(), hybrid_weight=0.4, progress=False).build(images).save(tmp_path / "saved")

    def load(directory):
        Retriever.load(directory, captioner=FakeCaptioner(), progress=False).search(["red"], k=2)

    assert fuzz(tmp_path / "saved", load, tmp_path, skip=("COMPLETE",)) > 20
    edit_manifest(tmp_path / "saved", load, tmp_path, ["vector_index", "index_factory", "batch_size", "hybrid_weight"])


@pytest.mark.slow
def test_damaged_captioners(tmp_path):
    import gemcaption  # noqa: F401  (sets the Keras backend)
    from gemcaption.captioning.captioner import Captioner

    rows = write_shapes(tmp_path / "shapes", per_kind=1, size=32)
    from gemcaption.data.loaders import Sample

    samples = [Sample(path, captions, label, "train") for path, captions, label in rows]
    tiny = dict(image_size=32, weights="none", embed_dim=16, ff_dim=16, num_heads=1, seq_len=6, dropout=0.0, seed=1)
    captioner = Captioner("transformer", encoder="efficientnet_lite0", **tiny)
    captioner.fit(samples, samples[:2], epochs=1, batch_size=8, verbose=0)
    captioner.save(tmp_path / "saved")

    def load(directory):
        Captioner.load(directory)

    # only plain mutations here: each one that passes the checksums builds an encoder (seconds each)
    saved = tmp_path / "saved"
    files = sorted(p.relative_to(saved) for p in saved.rglob("*") if p.is_file() and p.name != "COMPLETE")
    for case, rel in enumerate(files):
        for how in MUTATIONS:
            target = tmp_path / f"case{case}{how}"
            shutil.copytree(saved, target)
            mutate(target / rel, how)
            expect_clean_failure(load, target)
            shutil.rmtree(target)
    for how, name in [  # a consistent manifest: the Keras, HDF5 and JSON readers themselves fail cleanly
        ("truncate", "decoder.keras"),
        ("zero", "decoder.keras"),
        ("truncate", "encoder.weights.h5"),
        ("zero", "vocabulary.json"),
    ]:
        target = tmp_path / f"consistent-{how}-{name}"
        shutil.copytree(saved, target)
        mutate(target / name, how)
        rechecksum(target)
        with pytest.raises(ModelError, match=rf"^damaged: .*{name}"):
            load(target)
        shutil.rmtree(target)
    target = tmp_path / "names-a-module"  # a decoder.keras whose config names os.system instead of the decoder
    shutil.copytree(saved, target)
    name_a_module(target / "decoder.keras")
    rechecksum(target)
    with pytest.raises(ModelError, match=r"^damaged: .*decoder.keras"):
        load(target)


def name_a_module(path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config.update(module="os", class_name="system", registered_name=None)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
