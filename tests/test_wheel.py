"""The wheel as a user installs it: built from a copy of the source tree (offline: no build isolation),
installed into a fresh venv that borrows this venv's packages (torch is not fetched again), and run
from another folder: the shipped sweep files come with it, and a ./sweeps/ of the user's own wins."""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "augbench", "analysis", "sweeps"]


def run(cmd, cwd, env, timeout=300):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    pytest.importorskip("setuptools", reason="building without isolation needs setuptools in this venv")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy: the build's build/ and *.egg-info stay out of the working tree
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(p, src / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_REQUIRE", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp / "dist"), str(src)], tmp, env)
    wheel = next((tmp / "dist").glob("augbench-*.whl"))
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).strip())
    # this venv's packages (torch, numpy, pyyaml) after the new venv's own: nothing is downloaded
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_augbench_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        tmp, env)
    work = tmp / "elsewhere"
    work.mkdir()
    threads = seed_cpu_calibration(tmp / "results")
    env = {**env, "AUGBENCH_RESULTS": str(tmp / "results"), "PYTHONPATH": "", "OMP_NUM_THREADS": str(threads)}
    return py, work, env, wheel


def seed_cpu_calibration(root: Path) -> int:
    """The plan of `sweep run --policy no_crop` on a CPU times a few ResNet-18 steps once per machine
    (cached under <root>/cache); this test is about files, not timing: cache a made-up measurement.
    Returns the torch thread count the cache is keyed by (the subprocesses get the same)."""
    import torch

    from augbench.store.rows import RunStore
    from augbench.sweeps import calibrate
    from augbench.sweeps.schema import expand, policy_sweep

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(calibrate, "measure", lambda cfg: {"train_s_per_image": 1e-3, "forward_s_per_image": 1e-4})
        for cfg in expand(policy_sweep("no_crop")):
            calibrate.cpu_seconds_per_epoch(cfg, RunStore.at(root))
    return torch.get_num_threads()


def test_wheel_carries_the_sweep_files(wheel_venv):
    import zipfile

    _, _, _, wheel = wheel_venv
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"augbench/sweep_files/{p.name}" for p in (REPO / "sweeps").glob("*.yaml")}
    assert shipped and shipped <= names


def test_installed_wheel_runs_sweeps_from_another_folder(wheel_venv):
    py, work, env, _ = wheel_venv
    exe = py.parent / ("augbench.exe" if os.name == "nt" else "augbench")
    where = run([str(py), "-c", "import augbench.sweeps.schema as s; print(s.__file__); print(s.SWEEPS_DIR)"],
                work, env).split()
    assert all(Path(w).is_relative_to(py.parent.parent) for w in where), where  # the installed copy
    out = run([str(exe), "sweep", "status", "crop_matters"], work, env)
    assert "sweep crop_matters:" in out and "pending" in out and "no such sweep file" not in out
    out = run([str(exe), "sweep", "run", "--policy", "no_crop", "--dry-run"], work, env)
    assert "sweep policy_no_crop:" in out and "no such sweep file" not in out
    # a ./sweeps/crop_matters.yaml of the user's own comes first
    (work / "sweeps").mkdir()
    (work / "sweeps" / "crop_matters.yaml").write_text(
        "name: crop_matters\nbase: {epochs: 1}\naxes: {policy: [full, no_crop]}\n")
    out = run([str(exe), "sweep", "status", "crop_matters"], work, env)
    assert "sweep crop_matters: 2 runs" in out
