"""gemcaption.registry: names, aliases, lazy targets and the one error listing the choices."""

import subprocess
import sys

import pytest

from gemcaption.errors import ConfigError, GemcaptionError, UnknownNameError
from gemcaption.registry import Registry, normalize_name


def make_registry() -> Registry:
    colours = Registry("colour")
    colours.register("deep-red", "#8b0000", aliases=("Oxblood", "maroon"))
    colours.register("blue", "#0000ff")
    return colours


def test_names_are_normalised_and_listed_in_registration_order():
    colours = make_registry()
    assert normalize_name("  Deep-Red ") == normalize_name("deep red") == "deep_red"
    assert colours.names() == list(colours) == ["deep_red", "blue"] and len(colours) == 2
    assert colours.get("DEEP RED") == colours.get("deep_red") == "#8b0000"
    assert "Deep-Red" in colours and "green" not in colours


def test_aliases_resolve_to_the_canonical_name():
    colours = make_registry()
    assert colours.canonical("OXBLOOD") == colours.canonical("maroon") == "deep_red"
    assert colours.get("maroon") == "#8b0000"
    assert "maroon" in colours and "maroon" not in colours.names()


def test_unknown_name_lists_the_choices_and_is_a_config_error():
    colours = make_registry()
    with pytest.raises(UnknownNameError) as caught:
        colours.get("green")
    error = caught.value
    assert str(error) == "unknown colour 'green'; choose one of: deep_red, blue"
    assert error.kind == "colour" and error.name == "green" and error.choices == ["deep_red", "blue"]
    assert isinstance(error, ConfigError) and isinstance(error, ValueError) and isinstance(error, GemcaptionError)
    with pytest.raises(UnknownNameError, match="choose one of: deep_red, blue"):
        colours.canonical("")


def test_a_name_or_alias_cannot_be_registered_twice():
    colours = make_registry()
    with pytest.raises(ValueError, match="already registered"):
        colours.register("Blue", "#00f")
    with pytest.raises(ValueError, match="already registered"):
        colours.register("oxblood", "#800")


def test_register_as_a_decorator_returns_the_object():
    shapes = Registry("shape")

    @shapes.register("round", aliases=("circle",))
    class Round:
        pass

    assert Round.__name__ == "Round" and shapes.get("circle") is Round


def test_lazy_targets_are_imported_on_first_use_only():
    code = (
        "import sys; from gemcaption.registry import Registry; r = Registry('thing'); "
        "r.register('decoder', 'json.decoder:JSONDecoder'); r.register('x', 'email.mime.text:MIMEText'); "
        "print('email.mime.text' in sys.modules); cls = r.get('x'); "
        "print('email.mime.text' in sys.modules, cls.__name__, r.get('x') is cls)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "MIMEText", "True"]


def test_a_lazy_target_that_does_not_exist_fails_when_used():
    things = Registry("thing")
    things.register("ghost", "gemcaption.errors:NoSuchClass")
    assert things.names() == ["ghost"]
    with pytest.raises(AttributeError):
        things.get("ghost")
