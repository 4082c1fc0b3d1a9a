"""GemClassifier directories: the manifests, the previous release's layout, versions, kills.

The format-version-1 writer below reproduces what the previous release wrote (``labels.json`` and
``model/model.json`` beside the estimator), from a live classifier, so no fixture is stored.
Only scikit-learn models here (rf, logreg on the hand-crafted descriptor): no TensorFlow.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from kill_saves import kill_until_one_lands_mid_save
from roundtrip import assert_round_trip

from gemcaption.classification import CLASSIFIER_KINDS, GemClassifier, make_model
from gemcaption.classification.base import load_model_dir
from gemcaption.classification.baselines import DescriptorClassifier, _logreg_arrays
from gemcaption.classification.classifier import MODEL_CHOICES
from gemcaption.errors import ModelError, UnknownNameError

COLOURS = np.array([[210, 40, 40], [40, 190, 60], [50, 60, 210]])


def pixels(classes: int, per_class: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), per_class)
    x = COLOURS[y][:, None, None, :] + rng.normal(0, 20, (len(y), 16, 16, 3))
    return np.clip(x, 0, 255).astype(np.uint8), y


def trained(kind: str = "rf", classes: int = 3) -> GemClassifier:
    x, y = pixels(classes)
    model = DescriptorClassifier(kind, features=("handcrafted",), image_size=16, n_estimators=5)
    model.fit(x, y, classes)
    classifier = GemClassifier(model)
    classifier.labels = ["Ruby", "Emerald", "Sapphire"][:classes]
    classifier.training_seconds = 0.5
    return classifier


def same_predictions(before: GemClassifier, after: GemClassifier) -> None:
    x, _ = pixels(3, per_class=2, seed=5)
    assert after.labels == before.labels and after.training_seconds == before.training_seconds
    np.testing.assert_allclose(after.model.predict_proba(x), before.model.predict_proba(x), atol=1e-6)


def write_v1_classifier(classifier: GemClassifier, directory: Path) -> None:
    """``labels.json`` + ``model/model.json`` + the estimator, as the previous release wrote them."""
    import joblib

    model = classifier.model
    (directory / "model").mkdir(parents=True)
    (directory / "model" / "model.json").write_text(
        json.dumps(
            {"kind": "descriptor", "config": model.get_config(), "num_classes": model.num_classes},
            indent=2,
            sort_keys=True,
        )
    )
    if model.classifier == "logreg":
        np.savez(directory / "model" / "logreg.npz", **_logreg_arrays(model.model))
    else:
        joblib.dump(model.model, directory / "model" / "estimator.joblib")
    (directory / "labels.json").write_text(
        json.dumps(
            {"labels": classifier.labels, "kind": classifier.kind, "training_seconds": classifier.training_seconds},
            indent=2,
            ensure_ascii=False,
        )
    )


def test_the_kinds_come_from_one_registry():
    assert MODEL_CHOICES == ("vae", "cnn", "svm", "rf", "gan", "logreg", "vae_seed") == tuple(CLASSIFIER_KINDS.names())
    logreg = make_model("Logistic-Regression", image_size=16)
    assert logreg.classifier == "logreg" and logreg.views == ("identity", "hflip")
    assert make_model("rf").extractor.features == ("handcrafted",)
    with pytest.raises(UnknownNameError, match="unknown classifier kind 'knn'; choose one of: vae, cnn, svm"):
        GemClassifier("knn")


@pytest.mark.parametrize("kind", ["rf", "logreg"])
def test_a_version_1_classifier_loads_and_predicts_identically(kind, tmp_path):
    classifier = trained(kind)
    from gemcaption.classification.base import trusted_loading
    from gemcaption.errors import ModelError

    write_v1_classifier(classifier, tmp_path / "old")
    if kind == "rf":  # its estimator.joblib is a pickle: refused unless trusted
        with pytest.raises(ModelError, match="--trust"):
            GemClassifier.load(tmp_path / "old")
    with trusted_loading():
        loaded = GemClassifier.load(tmp_path / "old")
    same_predictions(classifier, loaded)
    assert loaded.kind == "descriptor" and loaded.model.get_config() == classifier.model.get_config()


def test_classifier_round_trip_writes_two_manifests(tmp_path):
    classifier = trained("logreg")
    assert_round_trip(classifier, lambda c: c.save(tmp_path / "clf"), GemClassifier.load, same_predictions)
    outer = json.loads((tmp_path / "clf" / "manifest.json").read_text())
    inner = json.loads((tmp_path / "clf" / "model" / "manifest.json").read_text())
    assert (outer["format"], outer["format_version"], outer["kind"]) == ("gemcaption-classifier", 2, "descriptor")
    assert outer["config"] == {"labels": ["Ruby", "Emerald", "Sapphire"], "training_seconds": 0.5}
    assert (inner["format"], inner["format_version"], inner["kind"]) == ("gemcaption-classifier-model", 2, "descriptor")
    assert inner["config"]["num_classes"] == 3 and inner["config"]["constructor"]["classifier"] == "logreg"
    assert set(inner["files"]) == {"logreg.npz"} and "model/logreg.npz" in outer["files"]
    assert not (tmp_path / "clf" / "labels.json").exists() and not (tmp_path / "clf" / "model" / "model.json").exists()
    model = load_model_dir(tmp_path / "clf" / "model")  # the inner directory stands on its own
    x, _ = pixels(3, per_class=2, seed=5)
    np.testing.assert_allclose(model.predict_proba(x), classifier.model.predict_proba(x), atol=1e-6)


def test_the_random_forest_is_saved_as_arrays_and_predicts_as_scikit_learn(tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    from gemcaption.classification.forest import ForestArrays, forest_arrays

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] ** 2 > 0.5).astype(int) + (x[:, 2] > 1)
    forest = RandomForestClassifier(n_estimators=7, random_state=0).fit(x, y)
    queries = rng.normal(size=(50, 6))
    np.testing.assert_allclose(
        ForestArrays(forest_arrays(forest)).predict_proba(queries), forest.predict_proba(queries), atol=1e-12
    )
    classifier = trained("rf")
    classifier.save(tmp_path / "clf")
    assert {p.name for p in (tmp_path / "clf" / "model").iterdir()} == {"forest.npz", "manifest.json"}
    np.load(tmp_path / "clf" / "model" / "forest.npz", allow_pickle=False)  # plain arrays, no pickle
    loaded = GemClassifier.load(tmp_path / "clf")
    assert isinstance(loaded.model.model, ForestArrays)
    same_predictions(classifier, loaded)
    loaded.save(tmp_path / "again")  # a loaded forest saves its arrays again
    same_predictions(classifier, GemClassifier.load(tmp_path / "again"))


def test_unknown_versions_and_damage_are_model_errors(tmp_path):
    trained("rf").save(tmp_path / "clf")
    outer_path = tmp_path / "clf" / "manifest.json"
    outer_bytes = outer_path.read_bytes()
    outer = json.loads(outer_bytes)
    outer_path.write_text(json.dumps({**outer, "format_version": 3}))
    with pytest.raises(ModelError, match="gemcaption-classifier format version 3 .*upgrade gemcaption"):
        GemClassifier.load(tmp_path / "clf")
    outer_path.write_bytes(outer_bytes)
    inner_path = tmp_path / "clf" / "model" / "manifest.json"
    inner_bytes = inner_path.read_bytes()
    inner = json.loads(inner_bytes)
    inner_path.write_text(json.dumps({**inner, "format_version": 4}))
    with pytest.raises(ModelError, match="damaged: .*model/manifest.json"):  # the outer checksum notices
        GemClassifier.load(tmp_path / "clf")
    with pytest.raises(ModelError, match="gemcaption-classifier-model format version 4"):
        load_model_dir(tmp_path / "clf" / "model")
    inner_path.write_text(json.dumps({**inner, "kind": "pickled"}))
    with pytest.raises(ModelError, match="unknown classifier model 'pickled'; choose one of: descriptor"):
        load_model_dir(tmp_path / "clf" / "model")
    inner_path.write_bytes(inner_bytes)
    estimator = tmp_path / "clf" / "model" / "forest.npz"
    estimator.write_bytes(estimator.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="damaged: .*forest.npz"):
        GemClassifier.load(tmp_path / "clf")
    with pytest.raises(ModelError, match="not a GemClassifier directory"):
        GemClassifier.load(tmp_path / "nothing")
    with pytest.raises(ModelError, match="nothing to save: the descriptor model is not trained yet"):
        DescriptorClassifier("rf").save(tmp_path / "untrained")
    assert not (tmp_path / "untrained").exists()


def test_saving_never_replaces_a_directory_of_other_files(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "ring.jpg").write_bytes(b"precious")
    with pytest.raises(ModelError, match="is not a GemClassifier directory"):
        trained("rf").save(tmp_path / "photos")
    assert (tmp_path / "photos" / "ring.jpg").read_bytes() == b"precious"
    (tmp_path / "empty").mkdir()
    trained("rf").save(tmp_path / "empty")
    write_v1_classifier(trained("rf", classes=2), tmp_path / "old")
    trained("rf").save(tmp_path / "old")  # an old classifier is replaced by the new one
    assert len(GemClassifier.load(tmp_path / "old").labels) == 3
    assert len(GemClassifier.load(tmp_path / "empty").labels) == 3


CLASSIFIER_SAVER = """
import sys
import numpy as np
from gemcaption.classification import GemClassifier
from gemcaption.classification.baselines import DescriptorClassifier
target = sys.argv[1]
rng = np.random.default_rng(0)
classifiers = []
for classes in (2, 3):
    y = np.repeat(np.arange(classes), 4)
    x = rng.integers(0, 255, (len(y), 16, 16, 3)).astype(np.uint8)
    model = DescriptorClassifier("rf", features=("handcrafted",), image_size=16, n_estimators=5)
    model.fit(x, y, classes)
    classifier = GemClassifier(model)
    classifier.labels = ["Ruby", "Emerald", "Sapphire"][:classes]
    classifiers.append(classifier)
print("READY", flush=True)
while True:
    for classifier in classifiers:
        classifier.save(target)
"""


def test_a_kill_during_a_classifier_save_leaves_a_loadable_classifier(tmp_path):
    target = tmp_path / "clf"
    trained("rf", classes=2).save(target)
    x, _ = pixels(2, per_class=1)

    def loads_one_of_the_two() -> None:
        loaded = GemClassifier.load(target)
        assert loaded.labels in (["Ruby", "Emerald"], ["Ruby", "Emerald", "Sapphire"])
        assert loaded.model.predict_proba(x).shape == (2, len(loaded.labels))

    interrupted = kill_until_one_lands_mid_save(
        CLASSIFIER_SAVER, [str(target)], target, loads_one_of_the_two, seed=12, high=0.3
    )
    assert any(interrupted)
