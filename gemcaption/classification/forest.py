"""A fitted Random Forest as plain arrays, so the ``rf`` classifier is saved without pickle.

:func:`forest_arrays` takes the trees of a fitted scikit-learn ``RandomForestClassifier`` apart into
NumPy arrays (one ``.npz``, loaded with ``allow_pickle=False``); :class:`ForestArrays` answers
``predict_proba`` from them exactly as scikit-learn does: features as float32, a sample goes left
where ``feature <= threshold``, each tree gives its leaf's class fractions and the forest averages
the trees.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError

ARRAY_NAMES = ("roots", "children_left", "children_right", "feature", "threshold", "value", "classes")
LEAF = -1


def forest_arrays(forest) -> dict:
    """The trees of a fitted ``RandomForestClassifier`` (one output) as arrays; node indices are
    global (each tree's nodes follow the previous tree's), ``roots`` holds each tree's first node."""
    if isinstance(forest, ForestArrays):
        return dict(forest.arrays)
    trees = [estimator.tree_ for estimator in forest.estimators_]
    if any(tree.n_outputs != 1 for tree in trees):
        raise ModelError("only single-output forests can be saved as arrays")
    roots = np.cumsum([0] + [tree.node_count for tree in trees])[:-1].astype(np.int64)

    def shifted(children: np.ndarray, root: int) -> np.ndarray:
        return np.where(children == LEAF, LEAF, children + root).astype(np.int64)

    values = []
    for tree in trees:
        value = tree.value[:, 0, :].astype(np.float64)
        values.append(value / np.maximum(value.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny))
    return {
        "roots": roots,
        "children_left": np.concatenate([shifted(t.children_left, r) for t, r in zip(trees, roots)]),
        "children_right": np.concatenate([shifted(t.children_right, r) for t, r in zip(trees, roots)]),
        "feature": np.concatenate([t.feature for t in trees]).astype(np.int64),
        "threshold": np.concatenate([t.threshold for t in trees]).astype(np.float64),
        "value": np.concatenate(values),
        "classes": np.asarray(forest.classes_).astype(np.int64),
    }


class ForestArrays:
    """``predict_proba`` of a Random Forest from the arrays of :func:`forest_arrays`."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        missing = [name for name in ARRAY_NAMES if name not in arrays]
        if missing:
            raise ModelError(f"the forest arrays lack {', '.join(missing)}")
        self.arrays = {name: np.asarray(arrays[name]) for name in ARRAY_NAMES}
        self._check()
        self.classes_ = self.arrays["classes"]

    def _check(self) -> None:
        """Shapes and links that predict_proba relies on: every inner node's children come after it
        (as scikit-learn builds trees), so a walk always ends; ModelError otherwise."""
        a = self.arrays
        if any(a[name].dtype.kind not in "fiu" for name in ARRAY_NAMES):
            raise ModelError("the forest arrays hold something other than numbers")
        nodes = len(a["feature"])
        left, right, roots = a["children_left"], a["children_right"], a["roots"]
        if any(a[name].shape != (nodes,) for name in ("children_left", "children_right", "threshold", "feature")):
            raise ModelError("the forest arrays disagree in length")
        if a["value"].shape != (nodes, len(a["classes"])) or a["classes"].ndim != 1 or roots.ndim != 1:
            raise ModelError("the forest's class fractions do not match its classes")
        index = np.arange(nodes)
        inner = left != LEAF
        if (
            not len(roots)
            or roots.min() < 0
            or roots.max() >= nodes
            or ((right != LEAF) != inner).any()
            or (left[inner] <= index[inner]).any()
            or (right[inner] <= index[inner]).any()
            or (left[inner] >= nodes).any()
            or (right[inner] >= nodes).any()
            or (a["feature"][inner] < 0).any()
            or not np.isfinite(a["value"]).all()
        ):
            raise ModelError("the forest's node links are broken")

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities ``(N, len(classes_))``: the mean over trees of the leaf fractions."""
        x = np.asarray(x, np.float32)
        left, right = self.arrays["children_left"], self.arrays["children_right"]
        feature, threshold = self.arrays["feature"], self.arrays["threshold"]
        roots = self.arrays["roots"]
        node = np.repeat(roots[:, None], len(x), axis=1)  # (trees, samples)
        sample = np.broadcast_to(np.arange(len(x))[None, :], node.shape)
        inner = left[node] != LEAF
        while inner.any():
            at = node[inner]
            goes_left = x[sample[inner], feature[at]] <= threshold[at]
            node[inner] = np.where(goes_left, left[at], right[at])
            inner = left[node] != LEAF
        return self.arrays["value"][node].mean(axis=0)
