"""`augbench rows import` on the real GPU rows of ../shared/gpu-rows/f1e4a68 (read only: copied into
tmp folders before anything is changed), and its refusals of bad input."""
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from augbench.cli import main as cli
from augbench.store.collect import collect
from augbench.store.rows import read_row

# beside the data folder: ../shared/gpu-rows next to ../shared/data (conftest sets AUGBENCH_DATA)
GPU_ROWS = Path(os.environ["AUGBENCH_DATA"]).resolve().parent / "gpu-rows" / "f1e4a68"
pytestmark = pytest.mark.skipif(not GPU_ROWS.is_dir(), reason=f"{GPU_ROWS} is not here")


@pytest.fixture
def rows_copy(tmp_path):
    """The f1e4a68 rows and logs, with their PROVENANCE.md one folder up, as handed over."""
    src = tmp_path / "handover" / "f1e4a68"
    shutil.copytree(GPU_ROWS, src)
    shutil.copy(GPU_ROWS.parent / "PROVENANCE.md", src.parent / "PROVENANCE.md")
    return src


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_import_of_the_six_gpu_rows_keeps_provenance_and_a_second_import_changes_nothing(rows_copy, tmp_path,
                                                                                         capsys):
    root = tmp_path / "results"
    assert cli(["rows", "import", str(rows_copy), "--results", str(root)]) == 0
    assert "6 row(s) imported" in capsys.readouterr().out
    ids = sorted(p.stem for p in GPU_ROWS.glob("*.json"))
    assert sorted(p.stem for p in (root / "runs").glob("*.json")) == ids
    for rid in ids:
        row, orig = read_row(rid, root / "runs"), json.loads((GPU_ROWS / f"{rid}.json").read_text())
        rec = row.pop("imported")
        assert row == orig  # the row itself is unchanged
        assert rec["source"] == str(rows_copy) and rec["file"].endswith(f"{rid}.json") and len(rec["sha256"]) == 64
        assert (root / rec["provenance"]).read_text().startswith("# Result rows from a lent GPU")
        assert (root / "logs" / f"{rid}.csv").read_bytes() == (GPU_ROWS / f"{rid}.csv").read_bytes()
    df = collect(root / "runs", csv_path=False)
    assert sorted(df["policy"]) == sorted(["full", "no_flip", "no_blur", "no_crop", "no_color", "crop_only"])
    assert df.loc[df["policy"] == "full", "knn_top1"].item() == pytest.approx(65.16, abs=0.01)
    before = snapshot(root)
    assert cli(["rows", "import", str(rows_copy), "--results", str(root)]) == 0
    assert "0 row(s) imported" in capsys.readouterr().out and snapshot(root) == before


def test_a_tar_imports_the_same_rows(rows_copy, tmp_path):
    tar_path = tmp_path / "rows.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(rows_copy, arcname="f1e4a68")
        tar.add(rows_copy.parent / "PROVENANCE.md", arcname="PROVENANCE.md")
    root = tmp_path / "results"
    assert cli(["rows", "import", str(tar_path), "--results", str(root)]) == 0
    assert len(list((root / "runs").glob("*.json"))) == 6 and len(list((root / "logs").glob("*.csv"))) == 6
    row = read_row(next(GPU_ROWS.glob("*.json")).stem, root / "runs")
    assert row["imported"]["file"].startswith(f"{tar_path}:f1e4a68/")


def test_a_done_row_here_is_never_overwritten(rows_copy, tmp_path):
    root = tmp_path / "results"
    rid = next(GPU_ROWS.glob("*.json")).stem
    mine = json.loads((GPU_ROWS / f"{rid}.json").read_text())
    mine["metrics"]["knn_top1"] = 1.0  # a different result already here
    (root / "runs").mkdir(parents=True)
    (root / "runs" / f"{rid}.json").write_text(json.dumps(mine))
    assert cli(["rows", "import", str(rows_copy), "--results", str(root)]) == 0
    assert read_row(rid, root / "runs")["metrics"]["knn_top1"] == 1.0
    assert len(list((root / "runs").glob("*.json"))) == 6


@pytest.mark.parametrize("damage, needle", [
    (lambda d, rid: (d / f"{rid}.json").write_text("{not json"), "not valid JSON"),
    (lambda d, rid: (d / f"{rid}.json").write_text(json.dumps({"run_id": rid, "status": "done"})), "field 'method'"),
    (lambda d, rid: (d / f"{rid}.json").rename(d / "other.json"), "holds run"),
    (lambda d, rid: (d / f"{rid}.json").write_text(
        (d / f"{rid}.json").read_text().replace('"status": "done"', '"status": "finished"')), "field 'status'"),
    (lambda d, rid: (d / f"{rid}.csv").write_text("a,b\n1,2\n"), "'epoch' column"),
    (lambda d, rid: (d / f"{rid}.json").unlink(), "a log without its row"),
])
def test_a_bad_file_is_named_and_nothing_is_written(rows_copy, tmp_path, capsys, damage, needle):
    rid = sorted(GPU_ROWS.glob("*.json"))[2].stem
    damage(rows_copy, rid)
    root = tmp_path / "results"
    assert cli(["rows", "import", str(rows_copy), "--results", str(root)]) == 2
    err = capsys.readouterr().err
    assert "nothing imported" in err and needle in err and str(rows_copy) in err and "Traceback" not in err
    assert not root.exists()


def test_missing_path_and_not_a_tar_are_refused(tmp_path, capsys):
    assert cli(["rows", "import", str(tmp_path / "nope"), "--results", str(tmp_path / "r")]) == 2
    assert "no such folder or file" in capsys.readouterr().err
    (tmp_path / "x.tar").write_text("not a tar")
    assert cli(["rows", "import", str(tmp_path / "x.tar"), "--results", str(tmp_path / "r")]) == 2
    assert "not a folder or a readable tar" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
