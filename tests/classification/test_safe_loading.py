"""Classifier models load without running code: the SVM as arrays, old pickles only with trust,
Keras files with safe_mode, and every damaged file as one ModelError."""

import json
import zipfile

import numpy as np
import pytest

from gemcaption.classification.base import load_model_dir, read_keras_file, trusted_loading
from gemcaption.classification.baselines import JOBLIB_FILE, SVM_FILE, DescriptorClassifier, _svm_with_probabilities
from gemcaption.classification.forest import ForestArrays
from gemcaption.classification.svm_arrays import SVMArrays, svm_arrays
from gemcaption.errors import ModelError

COLOURS = np.array([[210, 40, 40], [40, 190, 60], [50, 60, 210]])


def pixels(per_class: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), per_class)
    x = COLOURS[y][:, None, None, :] + rng.normal(0, 30, (len(y), 16, 16, 3))
    return np.clip(x, 0, 255).astype(np.uint8), y


def trained(kind: str) -> DescriptorClassifier:
    x, y = pixels()
    model = DescriptorClassifier(kind, features=("handcrafted",), image_size=16, n_estimators=5)
    model.fit(x, y, 3)
    return model


class CreatesFile:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("classes", [2, 4])
def test_svm_arrays_reproduce_the_fitted_scikit_learn_svm(classes):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(classes)
    y = np.repeat(np.arange(classes), 25)
    x = (rng.normal(size=(len(y), 5)) + y[:, None] * 0.8).astype(np.float32)
    pipeline = make_pipeline(StandardScaler(), _svm_with_probabilities(10.0, 0)).fit(x, y)
    arrays, params = svm_arrays(pipeline)
    json.dumps(params)  # plain JSON
    rebuilt = SVMArrays(arrays, params)
    queries = (rng.normal(size=(40, 5)) * 2).astype(np.float32)
    np.testing.assert_allclose(rebuilt.predict_proba(queries), pipeline.predict_proba(queries), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(rebuilt.classes_, pipeline.classes_)
    if classes == 2:  # libsvm's decision value for the one pair; scikit-learn flips its sign
        expected = -pipeline[-1].decision_function(pipeline[0].transform(queries))
        np.testing.assert_allclose(rebuilt.decision_values(queries)[:, 0], expected, atol=1e-10)


def test_the_svm_is_saved_without_pickle_and_predicts_identically(tmp_path):
    model = trained("svm")
    model.save(tmp_path / "svm")
    assert (tmp_path / "svm" / SVM_FILE).is_file() and not (tmp_path / "svm" / JOBLIB_FILE).exists()
    assert json.loads((tmp_path / "svm" / "svm.json").read_text())["kernel"] == "rbf"
    with np.load(tmp_path / "svm" / SVM_FILE, allow_pickle=False) as data:  # no object arrays inside
        assert all(data[name].dtype != object for name in data.files)
    loaded = load_model_dir(tmp_path / "svm")
    x, _ = pixels(per_class=3, seed=9)
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), atol=1e-12)


def old_joblib_directory(model: DescriptorClassifier, directory, payload=None):
    """A model directory as earlier releases wrote the SVM: the estimator pickled with joblib."""
    import joblib

    model.save(directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    for name in list(manifest["files"]):
        (directory / name).unlink()
    joblib.dump(model.model if payload is None else payload, directory / JOBLIB_FILE)
    manifest["files"] = {}  # the checksum of the pickle is not what is being tested
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_an_old_joblib_model_is_refused_unless_trusted(tmp_path):
    model = trained("svm")
    old_joblib_directory(model, tmp_path / "old")
    with pytest.raises(ModelError, match="--trust"):
        load_model_dir(tmp_path / "old")
    x, _ = pixels(per_class=2, seed=4)
    for loaded in (
        load_model_dir(tmp_path / "old", trust=True),
        DescriptorClassifier.load(tmp_path / "old", trust=True),
    ):
        np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), atol=1e-12)
    with trusted_loading():
        trusted = load_model_dir(tmp_path / "old")
    trusted.save(tmp_path / "converted")  # saving again stores arrays
    assert (tmp_path / "converted" / SVM_FILE).is_file()
    np.testing.assert_allclose(load_model_dir(tmp_path / "converted").predict_proba(x), model.predict_proba(x))


def test_an_untrusted_pickle_that_would_create_a_file_never_runs(tmp_path):
    marker = tmp_path / "created-by-pickle"
    old_joblib_directory(trained("svm"), tmp_path / "evil", payload=CreatesFile(marker))
    with pytest.raises(ModelError, match="--trust"):
        load_model_dir(tmp_path / "evil")
    assert not marker.exists()


def test_a_truncated_estimator_joblib_is_one_clear_error(tmp_path):
    old_joblib_directory(trained("rf"), tmp_path / "cut")
    pickle_file = tmp_path / "cut" / JOBLIB_FILE
    pickle_file.write_bytes(pickle_file.read_bytes()[:-50])
    with pytest.raises(ModelError, match="--trust"):
        load_model_dir(tmp_path / "cut")
    with pytest.raises(ModelError, match=r"^damaged: .*estimator.joblib"):
        load_model_dir(tmp_path / "cut", trust=True)


def old_gem_classifier(directory, model: DescriptorClassifier) -> None:
    """A GemClassifier directory whose inner SVM was written by an earlier release (joblib)."""
    from gemcaption.classification import GemClassifier

    classifier = GemClassifier(model)
    classifier.labels = ["Ruby", "Emerald", "Sapphire"]
    classifier.save(directory)
    old_joblib_directory(model, directory / "model")
    outer = json.loads((directory / "manifest.json").read_text())
    outer["files"] = {}
    (directory / "manifest.json").write_text(json.dumps(outer))


def test_gem_classifier_load_takes_trust(tmp_path):
    from gemcaption.classification import GemClassifier

    model = trained("svm")
    old_gem_classifier(tmp_path / "clf", model)
    with pytest.raises(ModelError, match="--trust"):
        GemClassifier.load(tmp_path / "clf")
    loaded = GemClassifier.load(tmp_path / "clf", trust=True)
    x, _ = pixels(per_class=2, seed=5)
    np.testing.assert_allclose(loaded.model.predict_proba(x), model.predict_proba(x), atol=1e-12)


def test_classify_predict_takes_trust(tmp_path, capsys):
    from PIL import Image

    from gemcaption.cli import main

    old_gem_classifier(tmp_path / "clf", trained("svm"))
    image = tmp_path / "stone.png"
    Image.fromarray(pixels(per_class=1)[0][0]).save(image)
    assert main(["classify", "predict", "--model", str(tmp_path / "clf"), str(image)]) == 2
    assert "--trust" in capsys.readouterr().err
    assert main(["classify", "predict", "--trust", "--model", str(tmp_path / "clf"), str(image)]) == 0


def test_a_forest_whose_links_loop_is_refused():
    model = trained("rf")
    from gemcaption.classification.forest import forest_arrays

    arrays = forest_arrays(model.model)
    inner = np.flatnonzero(arrays["children_left"] != -1)
    looped = dict(arrays, children_left=arrays["children_left"].copy())
    looped["children_left"][inner[-1]] = inner[-1]  # a node that is its own child: predict would never end
    with pytest.raises(ModelError, match="links"):
        ForestArrays(looped)


def write_tiny_keras(path):
    import keras

    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs)).save(path)


def test_a_keras_file_naming_a_module_is_a_model_error(tmp_path):
    path = tmp_path / "head.keras"
    write_tiny_keras(path)
    assert read_keras_file(path).output_shape == (None, 2)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    layer = config["config"]["layers"][-1]
    layer["module"], layer["class_name"], layer["registered_name"] = "os", "system", None
    members["config.json"] = json.dumps(config).encode()
    evil = tmp_path / "evil.keras"
    with zipfile.ZipFile(evil, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelError, match=r"^damaged: .*evil.keras"):
        read_keras_file(evil)
    evil.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelError, match=r"^damaged: .*evil.keras"):
        read_keras_file(evil)
    with pytest.raises(ModelError, match="missing"):
        read_keras_file(tmp_path / "absent.keras")
