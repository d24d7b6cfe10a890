"""The book's set-up: dependency lists agree, the table of contents and config are sound."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
#: conda-forge names of PyPI packages, where they differ
CONDA_NAMES = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    reqs = list(project["dependencies"])
    for extra in ("book", "test"):
        reqs += project["optional-dependencies"][extra]
    return {CONDA_NAMES.get(_name(r), _name(r)): r for r in reqs}


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if item.startswith("-e") or _name(item) in ("python", "pip"):
                continue
            out[_name(item)] = item
    return out


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    py, env = _pyproject_requirements(), _environment_requirements()
    assert sorted(py) == sorted(env), (
        f"only in pyproject.toml: {sorted(set(py) - set(env))}; "
        f"only in environment.yml: {sorted(set(env) - set(py))}"
    )
    for name, req in py.items():
        spec = re.sub(r"^[A-Za-z0-9_.\-\[\]]+", "", req).replace(" ", "")
        other = re.sub(r"^[A-Za-z0-9_.\-\[\]]+", "", env[name]).replace(" ", "")
        assert spec == other, (
            f"{name}: pyproject says {spec!r}, environment.yml says {other!r}"
        )


def test_jupyter_book_is_version_1():
    assert "jupyter-book>=1.0.4,<2" in _pyproject_requirements()[
        "jupyter-book"
    ].replace(" ", "")


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root"):
                files.append(value)
            else:
                files += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            files += _toc_files(item)
    return files


def test_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    missing = [
        f
        for f in _toc_files(toc)
        if not any((ROOT / f"{f}{ext}").is_file() for ext in (".md", ".ipynb"))
    ]
    assert not missing, f"_toc.yml names files that do not exist: {missing}"


def test_book_config_executes_with_cache_and_fails_on_errors():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "cache"
    assert cfg["execute"]["allow_errors"] is False
    sphinx = cfg["sphinx"]["config"]
    assert sphinx["nb_execution_raise_on_error"] is True
    assert sphinx["nb_output_stderr"] == "warn"
    assert (ROOT / cfg["bibtex_bibfiles"][0]).is_file()
    build = (ROOT / "tools" / "build.py").read_text()
    assert "--warningiserror" in build and "--keep-going" in build


def test_ci_runs_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make book" in readme


def test_every_data_file_of_the_library_is_package_data():
    """A file of helpers/ that is not Python (the CAM registry's methods.toml) must be listed as
    package data, or a wheel install (Colab's pip install) would miss it."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = config["tool"]["setuptools"].get("package-data", {})
    data = [
        p
        for p in (ROOT / "helpers").rglob("*")
        if p.is_file()
        and p.suffix not in (".py", ".pyc")
        and "__pycache__" not in p.parts
        and ".egg-info" not in str(p)
    ]
    import fnmatch

    def covered(
        path: Path,
    ) -> bool:  # a pattern of the package or of a package above it
        for package, patterns in listed.items():
            folder = ROOT.joinpath(*package.split("."))
            if folder in path.parents:
                rel = path.relative_to(folder).as_posix()
                if any(fnmatch.fnmatchcase(rel, pat) for pat in patterns):
                    return True
        return False

    missing = [str(p.relative_to(ROOT)) for p in data if not covered(p)]
    assert data and not missing, (
        f"not in [tool.setuptools.package-data] of pyproject.toml: {missing}"
    )
