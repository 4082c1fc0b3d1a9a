"""Input checks shared by the evaluation modules."""

from collections.abc import Sized

from ..errors import EvaluationError


def check_same_length(name_a: str, a: Sized, name_b: str, b: Sized) -> None:
    """Raise :class:`EvaluationError` unless ``a`` and ``b`` have the same length."""
    if len(a) != len(b):
        raise EvaluationError(f"{name_a} has {len(a)} entries but {name_b} has {len(b)}")
