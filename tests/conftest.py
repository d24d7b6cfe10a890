"""Shared pytest set-up: the test modules that run once, not again under a restricted
instruction set (TESTING.md, "Which tests run twice")."""

from __future__ import annotations

import os

import pytest

# The tests train what they need: never the quick models shipped with helpers, unless a test
# asks for them (tests/test_train_pretrained.py).
os.environ["CAMWALLS_PRETRAINED"] = "0"

#: Test modules whose outcome cannot depend on the CPU's instruction set: they check files,
#: messages, commands, layouts and packaging (no float result is asserted), or compare two code
#: paths on the same kernels in one process. ``make test`` runs them once, in the native run; the
#: restricted run (``make unit-restricted``) deselects them with ``-m "not isa_independent"``.
ISA_INDEPENDENT: dict[str, str] = {
    "test_cli": "command-line errors and exit statuses",
    "test_packaging": "pyproject.toml, environment.yml and the table of contents",
    "test_layers": "the import graph of helpers/",
    "test_policy": "the text of the tests (exactness comments)",
    "test_browsercheck": "the browser check on small HTML pages",
    "test_data_downloads": "downloads, digests and archives",
    "test_data_folders": "image folders on disk",
    "test_data_release": "the authors' release layout on disk",
    "test_notebooks": "the notebooks' JSON (no outputs, links, glue names)",
    "test_cache_lock": "file locks between processes (no float result)",
    "test_execute": "notebooks executed into the build cache (no float result)",
    "test_authors_path": "the authors' path and ours compared on the same kernels in one process "
    "(the kernels' behaviour across instruction sets is tested in test_cams)",
}


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:  # noqa: D103
    for item in items:
        if (
            item.module is not None
            and item.module.__name__.rsplit(".", 1)[-1] in ISA_INDEPENDENT
        ):
            item.add_marker(pytest.mark.isa_independent)
