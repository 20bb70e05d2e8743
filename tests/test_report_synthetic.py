"""`augbench report` on synthetic rows (issue 18): two generations are byte-identical, the report states its
settings and datasets without absolute paths or internal wording, imported rows are not holes, the figures
agree with the text and with each other, and the LaTeX fits the page."""
import re

import matplotlib
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgba
from test_verdicts_rules import CROP_AHEAD, frame, grid

from analysis import claims, labels, plots
from analysis.report import build
from augbench.cli import main as cli_main
from augbench.store.rows import write_row

GAP = {"full": 1.0}  # backbone - projector kNN: 1 point under full, 3 under every other policy


def _rows():
    """SimCLR on CIFAR-10 (all eight arms, 3 seeds) and BYOL on Imagenette-32 (leave-one-out, 2 seeds,
    imported from elsewhere, its sweep file not here)."""
    byol = {k: [v - 20 for v in CROP_AHEAD[k][:2]] for k in ("full", "no_crop", "no_color", "no_flip", "no_blur")}
    rows = grid(CROP_AHEAD) + grid(byol, method="byol", dataset="imagenette32", lr=1.0)
    for r in rows:
        m, name = r["metrics"], r["policy"]["name"]
        m.update(linear_top1=m["knn_top1"] + 5, knn_top1_random_init=30.0,
                 knn_top1_projector=m["knn_top1"] - GAP.get(name, 3.0))
        if r["method"] == "byol":
            r.update(sweep="elsewhere", imported={"source": "gpu-rows/x", "file": f"{r['run_id']}.json"})
    return rows


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    """The report generated twice from the same rows (an absolute --results) into two output folders."""
    root = tmp_path_factory.mktemp("results").resolve()
    for r in _rows():
        write_row(r, root / "runs")
    outs = [root.parent / "out_a", root.parent / "out_b"]
    for out in outs:
        assert cli_main(["report", "--results", str(root), "--out", str(out)]) == 0
    return root, outs


def _files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_two_generations_are_byte_identical(twice):
    _, (a, b) = twice
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys() and [k for k in fa if fa[k] != fb[k]] == []
    assert {"REPORT.md", "figures/drops.png", "figures/drops.pdf", "tables/verdicts_knn_top1.tex"} <= set(fa)


def test_report_reads_cleanly(twice):
    root, (out, _) = twice
    text = (out / "REPORT.md").read_text()
    assert str(root.parent) not in text and not re.search(r"(?<![\w.`])/(tmp|home|work|root|Users)/", text)
    assert not re.search(r"\bissue\b", text, re.I)
    # the recipe, what every run shares, and what differs between the cells (BYOL's lr, the data sets)
    settings = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    assert "- Recipe: generic" in settings and "vicreg_weights=[25.0, 25.0, 1.0]" in settings
    assert "| cell | momentum | lr |" in settings  # BYOL's momentum encoder and lr: per method, not a column
    assert "| byol / resnet18 / imagenette32 / 30 ep | True | 1.0 |" in settings
    assert "- Data sets (finished runs): CIFAR-10 (27 runs), Imagenette-32 (10 runs)" in text
    assert "On CIFAR-10:" in text and "On Imagenette-32:" in text
    # imported rows whose sweep file is elsewhere: said once in the header, not listed as missing
    assert "- Imported rows: 10" in text and "`elsewhere` have no sweep file here" in text
    assert "elsewhere" not in text.split("## What is missing", 1)[1].split("\n## ", 1)[0]
    assert "No holes" in text
    # the published references, beside our drops (no_flip, no_blur, ... ran)
    assert "## Published figures" in text and "### Paper vs ours" in text.split("## Published figures", 1)[1]
    assert "*unadjusted*" in text and "Holm-adjusted one-sided tests" in text


def test_no_published_section_without_comparable_arms(tmp_path):
    for r in grid({"full": [80, 81, 82], "no_crop": [60, 61, 62]}):
        write_row(r, tmp_path / "runs")
    text = build(tmp_path / "runs", tmp_path / "out", only=None)["report"].read_text()
    assert "## Published figures" not in text and "Paper vs ours" not in text


def test_a_new_generation_removes_the_tables_and_figures_the_rows_no_longer_give(tmp_path):
    for r in grid({"full": [80, 81, 82], "no_crop": [60, 61, 62]}):
        write_row(r, tmp_path / "runs")
    out = tmp_path / "out"
    first = build(tmp_path / "runs", out)
    made = sorted(p.name for t in first["tables"] for p in t.files)
    assert made and (out / "tables" / made[0]).exists()
    stale = [out / "tables" / "ablation_gone_cell.md", out / "tables" / "ablation_gone_cell.tex",
             out / "figures" / "gone.png"]
    mine = out / "tables" / "notes.txt"  # not the report's kind of file: kept
    for p in (*stale, mine):
        p.write_text("old")
    second = build(tmp_path / "runs", out)
    assert not any(p.exists() for p in stale) and mine.exists()
    assert sorted(p.name for t in second["tables"] for p in t.files) == made
    assert sorted(p.name for p in (out / "tables").glob("*.md")) == sorted(m for m in made if m.endswith(".md"))


def test_latex_tables_fit(twice):
    _, (out, _) = twice
    abl = (out / "tables" / "ablation_simclr_resnet18_cifar10_30.tex").read_text()
    assert abl.count("\\begin{table*}") == 1 and "\\end{table*}" in abl
    head = next(line for line in abl.splitlines() if line.startswith("Policy &"))
    assert "kNN p (Holm)" in head  # three seeds: the tests ran, so their column stays
    for p in (out / "tables").glob("*.tex"):
        caption = re.search(r"\\caption\{(.*)\}", p.read_text())[1]
        assert caption.endswith(".") and ". " not in caption, (p.name, caption)


@pytest.fixture
def drawn(monkeypatch):
    """The figures plots.* would save, kept open by name for inspection."""
    figs = {}
    monkeypatch.setattr(plots, "_save", lambda fig, out_dir, name, tight=True: figs.setdefault(name, fig) and [])
    yield figs
    for f in figs.values():
        matplotlib.pyplot.close(f)


def test_projector_figure_and_claim_use_the_same_runs(drawn, tmp_path):
    df = frame(_rows())
    plots.projector(df, tmp_path)
    notes = [t.get_text() for ax in drawn["projector"].axes for t in ax.texts]
    assert sorted(notes) == ["Δ +1.00 (n=2)", "Δ +1.00 (n=3)"]  # each cell's `full` runs
    c = claims.projector_removed(df)
    text = "\n".join(c.text)
    assert "per cell (5 runs, policy full)" in text
    # per cell, never pooled: SimCLR's three seeds decide, BYOL's two do not
    assert re.search(r"simclr / resnet18 / cifar10 / 30 ep: \*\*yes\*\* — backbone minus projector: mean \+1\.00 .*n=3\.", text)
    assert re.search(r"byol / resnet18 / imagenette32 / 30 ep: \*\*undecided\*\* — .*n=2; under 3 paired seeds", text)
    assert c.status == "partly supported"


def test_figures_share_labels_and_palette_and_keep_kinds_apart(drawn, tmp_path):
    df = frame(_rows())
    res = {f.name: f for f in (plots.drops(df, tmp_path), plots.only_one(df, tmp_path), plots.protocols(df, tmp_path))}
    assert "fine-tun" not in res["protocols"].title.lower() and res["protocols"].title.endswith("kNN vs linear")
    ticks = {name: [t.get_text() for ax in drawn[name].axes for t in ax.get_xticklabels()]
             for name in ("drops", "only_one")}
    assert ticks["drops"] and all(t.startswith("− ") for t in ticks["drops"])
    assert ticks["only_one"] and all(" only\n" in t for t in ticks["only_one"])
    knn = to_rgba(labels.PALETTE["kNN"])
    for name in ("drops", "only_one", "protocols"):
        colours = {p.get_facecolor() for ax in drawn[name].axes for p in ax.patches if p.get_height() > 0}
        assert knn in colours, name
    # two seeds: the seeds as dots, no interval; three seeds: t-intervals
    panels = {ax.get_title().split(" / ")[2]: ax for ax in drawn["drops"].axes}
    small, big = panels["Imagenette-32"], panels["CIFAR-10"]
    assert not any(isinstance(c, LineCollection) for c in small.collections)
    assert sum(len(c.get_offsets()) for c in small.collections if isinstance(c, PathCollection)) == 4 * 2 * 2
    assert any(isinstance(c, LineCollection) for c in big.collections)
    assert "dots: the seeds where n < 3" in res["drops"].title


def test_missing_runs_of_a_calibration_sweep_read_apart():
    """A sweep whose `include` entries share method / policy / backbone / seed: each missing line names
    what tells it from the others (not the values its method's recipe filled in)."""
    from analysis.grid import _distinguishing
    from augbench.sweeps import schema as sw

    s = sw.sweep_from_dict({"name": "cal", "base": {"method": "simclr", "width": 8, "epochs": 2},
                            "axes": {"seed": [0]},
                            "include": [{"width": 16}, {"method": "byol"}, {"method": "byol", "lr": 2.0}]})
    cfgs = sw.expand(s)
    extra = {(c.method, c.width, c.lr): v for c, v in ((c, _distinguishing(cfgs)[c.run_id]) for c in cfgs)}
    byol_lr = next(c.lr for c in cfgs if c.method == "byol" and c.lr != 2.0)
    assert extra[("simclr", 8, cfgs[0].lr)] == extra[("simclr", 16, cfgs[0].lr)] == ["width"]
    assert extra[("byol", 8, 2.0)] == ["lr"] and extra[("byol", 8, byol_lr)] == []  # recipe's lr: not shown


def test_integer_settings_print_as_integers():
    from analysis.report import _setting

    assert _setting(1000.0, "subset") == "1000" and _setting(1.0, "lr") == "1.0" and _setting("none", "subset") == "none"


def test_expected_runs_done_in_a_sibling_results_root_are_not_missing(tmp_path):
    import json

    from analysis.grid import _done_elsewhere

    here, cal = tmp_path / "results" / "runs", tmp_path / "results" / "cal" / "runs"
    here.mkdir(parents=True)
    cal.mkdir(parents=True)
    (cal / "aaaa.json").write_text(json.dumps({"run_id": "aaaa", "status": "done"}))
    (cal / "bbbb.json").write_text(json.dumps({"run_id": "bbbb", "status": "failed"}))
    (cal / "cccc.json").write_text("{not json")
    assert _done_elsewhere(here, ["aaaa", "bbbb", "cccc", "dddd"]) == {"aaaa": "results/cal/runs"}


def test_the_scale_section_gives_full_above_random_init_per_seed(twice):
    root, (out, _) = twice
    text = (out / "REPORT.md").read_text()
    scale = text.split("## Scale", 1)[1].split("\n## ", 1)[0]
    assert "| simclr / resnet18 / cifar10 / 30 ep | 3 | +51.0 | +50.0 | 0: +50.0, 1: +52.0, 2: +51.0 |" in scale
    assert "| byol / resnet18 / imagenette32 / 30 ep | 2 | +31.0 | +30.0 | 0: +30.0, 1: +32.0 |" in scale
