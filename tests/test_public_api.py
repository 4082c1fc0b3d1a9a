import ast
import subprocess
import sys
from pathlib import Path

import pytest

import gemcaption


def test_every_exported_name_resolves():
    for name in gemcaption.__all__:
        assert getattr(gemcaption, name) is not None, name


def test_import_does_not_load_tensorflow():
    code = "import sys, gemcaption; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="NotAThing"):
        _ = gemcaption.NotAThing


# --- the architecture the flat API sits on --------------------------------------------------------

PACKAGE = Path(gemcaption.__file__).parent


def _imports(path: Path) -> set[str]:
    """Absolute names of the gemcaption modules that ``path`` imports (relative imports resolved)."""
    module = ".".join(("gemcaption", *path.relative_to(PACKAGE).with_suffix("").parts))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name == "gemcaption" or name.startswith("gemcaption.")}


def test_data_depends_only_on_the_top_level_helpers():
    allowed = {"gemcaption.errors", "gemcaption.persistence", "gemcaption.registry", "gemcaption.text"}
    for path in sorted((PACKAGE / "data").glob("*.py")):
        outside = {name for name in _imports(path) if not name.startswith("gemcaption.data")} - allowed
        assert not outside, f"{path.name} imports {sorted(outside)}"


def test_every_exception_class_lives_in_errors():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base) for base in node.bases]
                raised = [b for b in bases if b.endswith(("Error", "Exception")) and not b.endswith("Warning")]
                assert not raised, f"{path.relative_to(PACKAGE)}: class {node.name}({', '.join(bases)})"
