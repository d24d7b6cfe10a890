"""The library's layers (``helpers.LAYERS``, written down in ``helpers/__init__.py``): a module
imports only modules of lower layers, function-local imports included, so there is no import
cycle, hidden or not, and every module has its place."""

from __future__ import annotations

import ast
from pathlib import Path

import helpers

ROOT = Path(helpers.__file__).resolve().parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return parts[0] if parts else ""


def helpers_imports(path: Path, package_depth: int | None = None) -> set[str]:
    """The top-level ``helpers`` modules that the file at ``path`` imports, anywhere in it.

    ``package_depth``: how deep the file sits below ``helpers/`` (0 for ``helpers/x.py``,
    1 for ``helpers/sub/x.py``; default: from ``path``)."""
    tree = ast.parse(path.read_text())
    if package_depth is None:
        package_depth = len(path.relative_to(ROOT).parts) - 1
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if (
                node.level
            ):  # relative: from . import x / from .x import y / from ..x import y
                if node.level - 1 < package_depth:  # inside its own subpackage
                    continue
                if node.module:
                    out.add(node.module.split(".")[0])
                else:
                    out.update(a.name.split(".")[0] for a in node.names)
            elif node.module and node.module.split(".")[0] == "helpers":
                parts = node.module.split(".")
                out.update(
                    [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
                )
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "helpers" and len(parts) > 1:
                    out.add(parts[1])
    return out


def _rank() -> dict[str, int]:
    return {name: i for i, layer in enumerate(helpers.LAYERS) for name in layer}


def test_the_checker_reads_imports_by_hand(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from . import cams, metrics as M\nfrom .config import x\nimport helpers.wall\n"
        "def f():\n    from .data import y\n    from .sub import z\n"
    )
    assert helpers_imports(probe, package_depth=0) == {
        "cams",
        "metrics",
        "config",
        "wall",
        "data",
        "sub",
    }
    # inside a subpackage, "from .sub import z" stays inside it; "from ..data" leaves it
    probe.write_text("from .sibling import z\nfrom ..data import y\n")
    assert helpers_imports(probe, package_depth=1) == {"data"}


def test_every_module_has_a_layer():
    modules = {_module_name(p) for p in ROOT.rglob("*.py")} - {""}
    missing = sorted(modules - set(_rank()))
    assert not missing, (
        f"modules without a layer in helpers.LAYERS (helpers/__init__.py): {missing}"
    )


def test_imports_point_down():
    rank = _rank()
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        name = _module_name(path)
        if not name:
            continue
        for dep in sorted(helpers_imports(path) - {name}):
            if dep in rank and rank[dep] >= rank[name]:
                wrong.append(
                    f"{path.relative_to(ROOT.parent)} imports helpers.{dep} "
                    f"(layer {rank[dep] + 1}, not below its own layer {rank[name] + 1})"
                )
    assert not wrong, (
        "imports that do not point down the layers of helpers/__init__.py:\n"
        + "\n".join(wrong)
    )


def test_the_library_never_imports_the_tools():
    """``tools/`` (build, browser check, benchmarks) sits above the library: helpers never imports it."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offenders += [
                f"{path.relative_to(ROOT.parent)}: import {n}"
                for n in names
                if n.split(".")[0] == "tools"
            ]
    assert not offenders, offenders
