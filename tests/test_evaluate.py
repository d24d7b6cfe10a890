"""helpers.evaluate: the table's numbers recomputed another way, the files, the cache, the
authors' checkpoint layout, the command line."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import torch

from helpers import cams, data as D, evaluate as E, metrics
from helpers.evaluate import (
    cli as E_cli,
    keys as E_keys,
    paper_table,
    run as E_run,
    store as E_store,
)
from helpers import results as R
from helpers.config import get_profile
from helpers.models import rvgg, rvgg_to_authors_state_dict

METHODS = ["gradcam", "hirescam", "layercam", "ablationcam", "opticam"]


@pytest.fixture(scope="module")
def profile():
    prof = get_profile("quick")
    return prof.replace(
        eval=prof.eval.__class__(
            stack_images=2,
            batch_size=2,
            opticam_iterations=1,
            score_batch=8,
            grid_images=2,
            seed=0,
        )
    )


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {
        "walled": rvgg(10, width=1 / 32).eval(),
        "baseline": rvgg(10, width=1 / 32, wall_rows=0).eval(),
    }


@pytest.fixture(scope="module")
def sets():
    g = torch.Generator().manual_seed(5)
    return {
        "STACK-MIX": (torch.randn(2, 3, 224, 224, generator=g), torch.tensor([0, 1])),
        "STACK-GEN (stand-in)": torch.randn(2, 3, 224, 224, generator=g),
    }


@pytest.fixture(scope="module")
def results(profile, models, sets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    res = E.evaluate(
        profile,
        methods=METHODS,
        models=models,
        sets=sets,
        folder=folder,
        show_progress=False,
    )
    res["_folder"] = folder
    return res


def test_rows_cover_every_cell_with_the_csv_columns(results):
    rows = results["rows"]
    assert len(rows) == 2 * 2 * len(METHODS)
    assert all(tuple(r) == E.CSV_COLUMNS for r in rows)
    assert {r["model"] for r in rows} == {"walled", "baseline"}
    assert all(r["n_images"] == 2 and r["source"] == "given" for r in rows)
    opti = R.select(R.table(rows), "Opti-CAM")
    assert len(opti) == 4 and all("1 Adam steps" in note for note in opti["note"])


def test_the_walls_bar(results):
    """HiResCAM and LayerCAM: mu = 0 on every image of the walled model; GradCAM: mu > 0."""
    df = R.table(results)
    for method in ("hirescam", "layercam"):
        for _, r in R.select(df, method, "walled").iterrows():
            assert (
                r["mu_mean"] == 0.0 and r["mu_max"] == 0.0 and r["mu_zero_share"] == 1.0
            )  # exact: wall
            assert r["zero_row_fraction"] >= 136 / 224
            assert r["observed"] == "blind"
    for _, r in R.select(df, "gradcam", "walled").iterrows():
        assert r["mu_mean"] > 0 and r["observed"] == "leaks"
    # on the baseline, HiResCAM does see the bottom rows
    assert (R.select(df, "hirescam", "baseline")["mu_mean"] > 0).all()


def test_mu_recomputed_directly(results, models, sets):
    """One cell, recomputed with saliency() and the metric on rows 170..223."""
    images = sets["STACK-MIX"][0]
    maps = cams.saliency(models["walled"], images, "gradcam")
    expected = [np.linalg.norm(m[170:]) / np.linalg.norm(m) for m in maps]
    got = E.per_image(results, "walled", "STACK-MIX", "gradcam")
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    row = R.cell(R.table(results), "gradcam", "walled", "STACK-MIX")
    assert row["mu_mean"] == pytest.approx(np.mean(expected), rel=1e-5)
    assert row["mu_std"] == pytest.approx(np.std(expected, ddof=1), rel=1e-4, abs=1e-7)
    assert row["zero_fraction"] == pytest.approx(np.mean(maps == 0), abs=1e-9)
    # the baseline's mu uses the walled model's rows too
    base = cams.saliency(models["baseline"], images, "gradcam")
    np.testing.assert_allclose(
        E.per_image(results, "baseline", "STACK-MIX", "gradcam"),
        metrics.dead_zone_share(base, rows=range(170, 224)),
        rtol=1e-5,
    )
    # top1: the explained class against the labels given
    logits = models["walled"](images)
    assert row["top1"] == pytest.approx(
        float((logits.argmax(1) == sets["STACK-MIX"][1]).float().mean())
    )


def test_files_and_reload_without_recomputing(
    results, profile, models, sets, monkeypatch
):
    folder = results["_folder"]
    paths = E.results_paths(profile, folder)
    with paths["csv"].open() as fh:
        csv_rows = list(csv.DictReader(fh))
    assert len(csv_rows) == len(results["rows"])
    assert float(csv_rows[0]["mu_mean"]) == pytest.approx(results["rows"][0]["mu_mean"])
    saved = json.loads(paths["json"].read_text())
    assert saved["settings"]["opticam_iterations"] == 1 and saved["unseen_rows"] == [
        170,
        223,
    ]

    def boom(*a, **k):
        raise AssertionError("recomputed although current results exist")

    monkeypatch.setattr(E_run, "evaluate", boom)
    rows = E.table1(profile, models=models, sets=sets, methods=METHODS, folder=folder)
    assert rows == saved["rows"]
    full = E.evaluation(
        profile, models=models, sets=sets, methods=METHODS, folder=folder
    )
    grid = E.grid_maps(full, "walled", "STACK-MIX", "hirescam")
    direct = cams.saliency(models["walled"], sets["STACK-MIX"][0][:2], "hirescam")
    np.testing.assert_allclose(grid, direct, atol=1e-5)


def test_other_weights_or_images_are_recomputed(
    results, profile, models, sets, monkeypatch
):
    folder = results["_folder"]
    calls = []
    monkeypatch.setattr(
        E_run, "evaluate", lambda *a, **k: calls.append(k) or {"rows": []}
    )
    changed = {name: m for name, m in models.items()}
    other = copy.deepcopy(models["baseline"])
    with torch.no_grad():
        other.classifier[-1].bias.add_(0.01)
    changed["baseline"] = other
    E.table1(profile, models=changed, sets=sets, methods=METHODS, folder=folder)
    E.table1(
        profile,
        models=models,
        sets={"STACK-MIX": sets["STACK-MIX"]},
        methods=METHODS,
        folder=folder,
    )
    E.table1(profile, models=models, sets=sets, methods=["gradcam"], folder=folder)
    E.table1(
        profile,
        models=models,
        sets=sets,
        methods=METHODS,
        folder=folder,
        recompute=True,
    )
    assert len(calls) == 4


def test_the_authors_checkpoint_layout(
    results, profile, models, sets, tmp_path, monkeypatch
):
    """Checkpoints saved in the authors' flat layout load through helpers.data and give the
    same table as the models themselves."""
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path))
    folder = D.authors_dir()
    folder.mkdir(parents=True, exist_ok=True)  # authors_dir() is only a path
    for walled, name in D.AUTHORS_CHECKPOINTS.items():
        state = models["walled" if walled else "baseline"].state_dict()
        torch.save(rvgg_to_authors_state_dict(state), folder / name)
    real = profile.replace(
        data=profile.data.__class__(
            source="imagefolder", num_classes=10, train_images=0, val_images=0
        )
    )
    assert E_keys.resolve_source(real, "auto", False) == "authors"
    assert (
        E_keys.resolve_source(profile, "auto", False) == "trained"
    )  # synthetic data: our own models
    methods = ["gradcam", "hirescam"]
    # these checkpoints are not the ones the authors published (pinned digests): each gets a warning
    with pytest.warns(D.UnpublishedCheckpointWarning) as caught:
        theirs = E.evaluate(
            real,
            methods=methods,
            sets=sets,
            source="authors",
            folder=tmp_path / "a",
            show_progress=False,
        )
    assert {str(w.message).split()[0] for w in caught} == {
        str(folder / n) for n in D.AUTHORS_CHECKPOINTS.values()
    }
    assert theirs["source"] == "authors"
    ours = R.table(results)
    for a in theirs["rows"]:
        b = R.cell(ours, a["method"], a["model"], a["dataset"])
        assert a["mu_mean"] == pytest.approx(b["mu_mean"], abs=1e-6)
    for name in ("walled", "baseline"):
        assert (
            theirs["models"][name]["fingerprint"]
            == results["models"][name]["fingerprint"]
        )


@pytest.fixture
def command(profile, models, sets, tmp_path, monkeypatch):
    """The command line on the tiny models and sets, with its cache in ``tmp_path / "home"``;
    returns a dict counting the computations (``"runs"``)."""
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CAMWALLS_BOOK_BUILD", "1")  # no progress bar on stderr
    counter = {"runs": 0}

    def fake_models(prof, src, dev):
        counter["runs"] += 1
        return dict(models), {}

    monkeypatch.setattr(E_run, "default_models", fake_models)
    monkeypatch.setattr(E_run, "default_sets", lambda prof, n: dict(sets))
    for module in (E_run, E_cli):
        monkeypatch.setattr(module, "get_profile", lambda name=None: profile)
    return counter


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    ), err
    return lines[0]


def test_command_line(command, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = E.main(["--methods", "gradcam,HiResCAM", "--out", str(out_dir)])
    out = capsys.readouterr().out
    assert code == 0 and command["runs"] == 1
    assert (
        "HiResCAM" in out
        and "table1.csv" in out
        and (out_dir / "table1.json").is_file()
    )
    # the cache got them first: a second run loads them
    cache = E.results_paths("quick")["json"]
    assert (
        cache.is_file()
        and json.loads(cache.read_text())["rows"]
        == json.loads((out_dir / "table1.json").read_text())["rows"]
    )
    assert E.main(["--methods", "gradcam,HiResCAM"]) == 0 and command["runs"] == 1
    code = E.main(["--methods", "nosuchcam", "--out", str(out_dir)])
    assert code == 2 and "Unknown CAM method" in _one_error_line(
        capsys.readouterr().err
    )


def test_command_line_out_that_cannot_be_written_fails_before_computing(
    command, tmp_path, capsys
):
    blocker = tmp_path / "afile.txt"
    blocker.write_text("a file where a folder should be")
    code = E.main(["--methods", "gradcam", "--out", str(blocker / "out")])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and command["runs"] == 0
    assert (
        f"--out {blocker / 'out'} cannot be used" in line
        and f"{blocker} is a file, not a folder" in line
    )
    assert "Pass --out a folder you can write to" in line
    assert not (tmp_path / "home").exists()  # nothing was created either


def test_command_line_keeps_the_results_when_writing_out_fails(
    command, tmp_path, capsys, monkeypatch
):
    """A disk full while writing --out: the results are in the cache, written first, and the
    error says so; the next run loads them from there instead of computing them again."""
    import errno

    out_dir = tmp_path / "out"
    real_write = E_store._write

    def full_disk_in_out(results, grids, paths):
        if paths["json"].parent == out_dir:
            raise OSError(errno.ENOSPC, "No space left on device", str(paths["maps"]))
        return real_write(results, grids, paths)

    monkeypatch.setattr(E_store, "_write", full_disk_in_out)
    code = E.main(["--methods", "gradcam", "--out", str(out_dir)])
    line = _one_error_line(capsys.readouterr().err)
    cache = E.results_paths("quick")
    assert code == 2 and command["runs"] == 1
    assert (
        f"Cannot write the results to --out {out_dir}" in line
        and "No space left on device" in line
    )
    assert f"Nothing is lost: they are in {cache['json'].parent}" in line
    kept = json.loads(cache["json"].read_text())
    assert (
        kept["methods"] == ["gradcam"]
        and len(kept["rows"]) == 4
        and cache["maps"].is_file()
    )
    monkeypatch.setattr(E_store, "_write", real_write)
    assert E.main(["--methods", "gradcam", "--out", str(out_dir)]) == 0
    assert command["runs"] == 1  # loaded from the cache, not computed again
    assert json.loads((out_dir / "table1.json").read_text())["rows"] == kept["rows"]


def test_command_line_with_a_cache_that_cannot_be_written(command, tmp_path, capsys):
    blocker = tmp_path / "afile.txt"
    blocker.write_text("x")
    import os

    os.environ["CAMWALLS_HOME"] = str(
        blocker / "home"
    )  # the fixture's monkeypatch restores it
    code = E.main(["--methods", "gradcam"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and command["runs"] == 0
    assert f"The results folder {blocker / 'home' / 'results' / 'quick'}" in line
    assert "Set CAMWALLS_HOME to a writable folder, or pass --out FOLDER" in line
    # with --out, the results go there (and a note says the cache was skipped)
    assert (
        E.main(["--methods", "gradcam", "--out", str(tmp_path / "out")]) == 0
        and command["runs"] == 1
    )
    assert (tmp_path / "out" / "table1.json").is_file()
    assert "cannot be written" in capsys.readouterr().err


def test_reading_current_results_creates_and_writes_nothing(
    command, tmp_path, capsys, monkeypatch
):
    """A cache that can be read but not written (a read-only mount) still serves its results."""
    from pathlib import Path

    assert E.main(["--methods", "gradcam"]) == 0 and command["runs"] == 1
    capsys.readouterr()

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", read_only)
    monkeypatch.setattr(Path, "write_text", read_only)
    monkeypatch.setattr(E_store, "_write", read_only)
    assert E.main(["--methods", "gradcam"]) == 0 and command["runs"] == 1
    assert "GradCAM" in capsys.readouterr().out


def test_evaluate_checks_its_folder_before_any_work(
    profile, models, sets, tmp_path, monkeypatch
):
    from helpers.cli import NotWritableError

    blocker = tmp_path / "afile.txt"
    blocker.write_text("x")
    monkeypatch.setattr(
        cams, "compute_cams", lambda *a, **k: pytest.fail("computed before the check")
    )
    with pytest.raises(NotWritableError, match="is a file, not a folder") as info:
        E.evaluate(
            profile,
            methods=["gradcam"],
            models=models,
            sets=sets,
            folder=blocker / "r",
            show_progress=False,
        )
    assert isinstance(info.value, OSError) and "write=False" in str(info.value)


def test_evaluate_keeps_a_copy_when_the_write_fails(
    profile, models, sets, tmp_path, monkeypatch
):
    import errno
    import shutil

    target = tmp_path / "results"
    real_write = E_store._write

    def full_disk_in_target(results, grids, paths):
        if paths["json"].parent == target:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(results, grids, paths)

    monkeypatch.setattr(E_store, "_write", full_disk_in_target)
    with pytest.raises(E.ResultsWriteError) as info:
        E.evaluate(
            profile,
            methods=["gradcam"],
            models=models,
            sets=sets,
            folder=target,
            show_progress=False,
        )
    err = info.value
    try:
        assert (
            err.kept_in is not None
            and str(err.kept_in) in str(err)
            and str(target) in str(err)
        )
        assert "No space left on device" in str(err) and "Nothing is lost" in str(err)
        kept = json.loads((err.kept_in / "table1.json").read_text())
        assert (
            json.dumps(kept["rows"]) == json.dumps(err.results["rows"])
            and len(kept["rows"]) == 4
        )  # NaN top1
        assert set(E.load_maps(folder=err.kept_in)) == set(err.results["_maps"])
        # what the message says to do works: the copy is the evaluation
        assert E.save_results(err.results, tmp_path / "later")["json"].is_file()
    finally:
        if err.kept_in is not None:
            shutil.rmtree(err.kept_in)


def test_a_failed_write_leaves_the_previous_results_whole(results, tmp_path):
    folder = tmp_path / "r"
    paths = E.save_results(results, folder)
    before = {k: p.read_bytes() for k, p in paths.items()}
    broken = dict(
        results, rows=results["rows"][:1] + [{"profile": "x"}]
    )  # a row without its columns
    with pytest.raises(KeyError):
        E_store._write(broken, results["_maps"], paths)
    assert {k: p.read_bytes() for k, p in paths.items()} == before
    assert sorted(p.name for p in folder.iterdir()) == [
        "maps.npz",
        "table1.csv",
        "table1.json",
    ]


def test_results_paths_and_loading_create_no_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "afile.txt"
    blocker.write_text("x")
    monkeypatch.setenv("CAMWALLS_HOME", str(blocker / "home"))
    paths = E.results_paths("quick")
    assert paths["json"] == blocker / "home" / "results" / "quick" / "table1.json"
    assert E.load_results("quick") is None and E.load_maps("quick") == {}
    assert E_keys.authors_available() is False


def test_bad_input(profile, models, sets, tmp_path):
    with pytest.raises(ValueError, match="models must be keyed"):
        E.evaluate(
            profile,
            methods=["gradcam"],
            models={"walls": models["walled"]},
            sets=sets,
            write=False,
        )
    with pytest.raises(ValueError, match="source"):
        E.evaluate(
            profile, methods=["gradcam"], source="nowhere", sets=sets, write=False
        )
    with pytest.raises(TypeError, match="stack set"):
        E.evaluate(
            profile,
            methods=["gradcam"],
            models=models,
            sets={"x": [1, 2, 3]},
            write=False,
        )
    with pytest.raises(KeyError, match="per-image"):
        E.per_image({"per_image": {}}, "walled", "STACK-MIX", "gradcam")


def test_the_results_table_of_an_evaluation_renders_and_prints(results):
    """What helpers.evaluate computed, through helpers.results: the paper's values where known,
    every method once, and the command line's text table."""
    df = R.table(results)
    html = R.table_html(df, stamp="profile: test")
    assert html.count("<tr>") == 2 + len(METHODS)  # two header rows
    assert "about 0.227" in html and "exactly 0" in html
    assert (
        "LayerCAM <small>(not in the paper)</small>" in html and "profile: test" in html
    )
    text = R.table_text(df)
    assert "HiResCAM" in text and "0.000 +- 0.000" in text


def test_the_paper_table_comparison():
    """--paper-table's comparison: ours is the mean over the two sets of the walled model's mu,
    the difference ours minus the paper's; notes when the setting is not the paper's."""
    values = {
        ("gradcam", "STACK-MIX"): 0.2,
        ("gradcam", "STACK-GEN"): 0.3,
        ("hirescam", "STACK-MIX"): 0.0,
        ("hirescam", "STACK-GEN"): 0.0,
    }
    rows = [
        {
            "model": "walled",
            "dataset": s,
            "method": m,
            "mu_mean": v,
            "mu_std": 0.1,
            "n_images": 100,
        }
        for (m, s), v in values.items()
    ]
    df = R.table(rows)
    cmp = paper_table.comparison(df).set_index("method")
    assert cmp.loc["gradcam", "ours"] == pytest.approx(0.25, abs=1e-12)
    assert cmp.loc["gradcam", "difference"] == pytest.approx(0.25 - 0.227, abs=1e-12)
    assert cmp.loc["hirescam", "difference"] == pytest.approx(0.0, abs=1e-12)
    text = paper_table.comparison_text(df)
    assert "GradCAM      walled       0.227    0.250        +0.023" in text
    assert "HiResCAM     walled       0.000    0.000        +0.000" in text
    assert "The other cells are not available to us." in text and "Note:" not in text
    rows[1]["dataset"] = rows[3]["dataset"] = "STACK-GEN (stand-in)"
    for r in rows:
        r["n_images"] = 2
    text = paper_table.comparison_text(R.table(rows))
    assert (
        "not the paper's STACK-MIX, STACK-GEN" in text
        and "2 image(s) per set, the paper 100" in text
    )


def test_the_paper_table_settings():
    assert paper_table.paper_table_settings(None, "auto", None) == {
        "profile": "full",
        "source": "authors",
        "methods": "paper",
    }
    assert (
        paper_table.paper_table_settings("Full", "authors", "paper")["profile"]
        == "full"
    )
    with pytest.raises(
        ValueError, match="--profile quick.*--source trained.*--methods gradcam"
    ):
        paper_table.paper_table_settings("quick", "trained", "gradcam")
