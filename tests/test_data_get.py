"""`augbench data get`: download over HTTP (a local server on 127.0.0.1 serving a small archive in the
official layout), md5 check, safe unpacking, the offline message, `--archive`, and the missing-data
messages of load_dataset and `sweep run` that name the command."""
import contextlib
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from augbench.cli import main as cli_main
from augbench.data import DataError, download, load_dataset

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FILE = download.ARCHIVES["cifar10"].file  # cifar-10-python.tar.gz


def cifar_archive(path: Path, extra: list[tarfile.TarInfo] = (), n: int = 4) -> str:
    """A cifar-10-python.tar.gz like the official one (cifar-10-batches-py/: 5 train batches, a test
    batch, batches.meta as protocol-2 pickles with bytes keys), n images per batch; returns its md5."""
    rng = np.random.default_rng(0)
    members = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        members[name] = pickle.dumps({b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                                      b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}, protocol=2)
    members["batches.meta"] = pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}, protocol=2)
    with tarfile.open(path, "w:gz") as tar:
        d = tarfile.TarInfo("cifar-10-batches-py")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(d)
        for name, blob in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return hashlib.md5(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def http_server(folder: Path, limit_s: float = 60):
    """Serve `folder` on 127.0.0.1 (a free port) from a thread; stops on exit, or by itself after limit_s."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(folder), **kw)

        def log_message(self, *a):  # quiet; remember what was asked for
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    timer = threading.Timer(limit_s, server.shutdown)
    thread.start()
    timer.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        timer.cancel()
        server.shutdown()
        server.server_close()
        thread.join(10)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A local mirror holding a small cifar-10-python.tar.gz; the checksum table expects its md5."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    md5 = cifar_archive(mirror / FILE)
    monkeypatch.setitem(download.ARCHIVES, "cifar10", replace(download.ARCHIVES["cifar10"], md5=md5))
    root = tmp_path / "data"
    monkeypatch.setenv("AUGBENCH_DATA", str(root))
    with http_server(mirror) as (url, requests):
        monkeypatch.setenv(download.MIRROR_ENV, url)
        yield SimpleNamespace(root=root, url=url, requests=requests, mirror=mirror, md5=md5)


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_get_downloads_checks_unpacks_and_is_then_a_no_op(served, capsys):
    assert cli_main(["data", "get", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert f"{served.url}/{FILE}" in out and "ready in" in out
    folder = served.root / "cifar10" / "cifar-10-batches-py"
    assert folder.is_dir() and served.requests == [f"/{FILE}"]
    # the layout load_dataset reads, and nothing else left behind (the archive is deleted)
    assert leftovers(served.root / "cifar10") == ["cifar-10-batches-py"] + sorted(
        f"cifar-10-batches-py/{n}" for n in ["batches.meta", "test_batch"] + [f"data_batch_{i}" for i in range(1, 6)])
    ds = load_dataset("cifar10", "train")
    assert ds.images.shape == (20, 3, 32, 32) and ds.classes == CLASSES
    assert cli_main(["data", "get", "cifar10"]) == 0  # already there: no second request
    assert "already there" in capsys.readouterr().out and served.requests == [f"/{FILE}"]


def test_load_dataset_download_true_uses_it(served):
    ds = load_dataset("cifar10", "test", download=True)
    assert len(ds) == 4 and served.requests == [f"/{FILE}"]


def test_bad_checksum_is_refused_and_nothing_is_unpacked(served, monkeypatch, capsys):
    monkeypatch.setitem(download.ARCHIVES, "cifar10", replace(download.ARCHIVES["cifar10"], md5="0" * 32))
    assert cli_main(["data", "get", "cifar10"]) == 2
    err = capsys.readouterr().err
    assert f"md5 {served.md5}, expected {'0' * 32}" in err and "nothing was unpacked" in err
    assert leftovers(served.root) == []  # no archive, no partial file, no folder


def test_offline_says_which_file_from_where_and_where_to_put_it(tmp_path, monkeypatch, capsys):
    url = f"http://127.0.0.1:{closed_port()}/"
    monkeypatch.setitem(download.ARCHIVES, "cifar10", replace(download.ARCHIVES["cifar10"], base_url=url))
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    assert cli_main(["data", "get", "cifar10", "--root", str(tmp_path / "data")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    a = download.ARCHIVES["cifar10"]
    assert f"could not download {url}{FILE}" in err
    assert f"download {url}{FILE}" in err and a.md5 in err  # which file, from where, its checksum
    assert f"augbench data get cifar10 --archive PATH/{FILE}" in err
    assert str(tmp_path / "data" / "cifar10" / "cifar-10-batches-py") in err  # where it goes
    assert leftovers(tmp_path / "data") == []


def test_archive_flag_checks_and_unpacks_a_copy(tmp_path, monkeypatch, capsys):
    md5 = cifar_archive(tmp_path / FILE)
    root = tmp_path / "data"
    monkeypatch.setitem(download.ARCHIVES, "cifar10", replace(download.ARCHIVES["cifar10"], md5=md5))
    bad = tmp_path / "bad" / FILE
    bad.parent.mkdir()
    bad.write_bytes((tmp_path / FILE).read_bytes()[:-100])  # a partial download
    assert cli_main(["data", "get", "cifar10", "--root", str(root), "--archive", str(bad)]) == 2
    assert "nothing was unpacked" in capsys.readouterr().err and leftovers(root) == [] and bad.exists()
    assert cli_main(["data", "get", "cifar10", "--root", str(root), "--archive", str(tmp_path / FILE)]) == 0
    assert (root / "cifar10" / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert (tmp_path / FILE).exists()  # the user's own copy is kept
    assert load_dataset("cifar10", "test", root=root).images.shape == (4, 3, 32, 32)


def _file(name: str, size: int = 3) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("member", [
    _file("cifar-10-batches-py/../../escaped.txt"),
    _file("/tmp/augbench_absolute_escape.txt"),
    _file("elsewhere/x.txt"),  # outside the dataset's one folder
    _link("cifar-10-batches-py/link", "../../escaped.txt"),
    _link("cifar-10-batches-py/hard", "/etc/passwd", tarfile.LNKTYPE),
], ids=["dotdot", "absolute", "other-folder", "symlink", "hardlink"])
def test_path_traversal_is_refused(tmp_path, monkeypatch, capsys, member):
    arc = tmp_path / "in" / FILE
    arc.parent.mkdir()
    md5 = cifar_archive(arc, extra=[member])
    monkeypatch.setitem(download.ARCHIVES, "cifar10", replace(download.ARCHIVES["cifar10"], md5=md5))
    root = tmp_path / "box" / "data"
    assert cli_main(["data", "get", "cifar10", "--root", str(root), "--archive", str(arc)]) == 2
    err = capsys.readouterr().err
    assert "refusing to unpack" in err and member.name in err and "nothing was unpacked" in err
    assert leftovers(tmp_path / "box") == ["data"]  # the data root was made; nothing inside it
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "box" / "escaped.txt").exists()
    assert not Path("/tmp/augbench_absolute_escape.txt").exists()


def test_missing_data_names_the_command(tmp_path, monkeypatch, capsys, results_root):
    monkeypatch.setenv("AUGBENCH_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as e:
        load_dataset("cifar10")
    msg = " ".join(str(e.value).split())
    assert "`augbench data get cifar10`" in msg and "torchvision" not in msg
    assert f"augbench data get cifar10 --archive PATH/{FILE}" in msg
    # a sweep says so before it starts
    assert cli_main(["sweep", "run", "smoke", "--executor", "inprocess"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cifar10 is not under the data root" in err and "`augbench data get cifar10`" in err and "--yes" in err
    assert cli_main(["sweep", "run", "smoke", "--dry-run"]) == 0
    assert "augbench data get cifar10" in capsys.readouterr().out


def test_sweep_run_yes_downloads_first(served, monkeypatch, capsys, results_root):
    from augbench.sweeps import cli as sweep_cli

    started = []

    class Executor:  # stands in for the runs: this test is about what happens before them
        def __init__(self, *a, **kw):
            pass

        def run(self, todo):
            started.append((len(todo), download.present("cifar10")))
            return SimpleNamespace(counts={"failed": 0})

    monkeypatch.setattr(sweep_cli, "InProcessExecutor", Executor)
    assert cli_main(["sweep", "run", "smoke", "--executor", "inprocess", "--yes"]) == 0
    assert started == [(4, served.root / "cifar10" / "cifar-10-batches-py")]
    assert served.requests == [f"/{FILE}"]


# ---------------------------------------------------------------------- the Makefile on a fresh machine
REPO = Path(__file__).resolve().parents[1]


def make_vars(tmp_path, env_data: str | None, *names: str) -> list[str]:
    import os
    import shutil
    import subprocess

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    extra = tmp_path / "print.mk"
    extra.write_text("print-vars:\n" + "".join(f"\t@echo '$({n})'\n" for n in names))
    env = {k: v for k, v in os.environ.items() if k != "AUGBENCH_DATA"}
    if env_data is not None:
        env["AUGBENCH_DATA"] = env_data
    r = subprocess.run(["make", "-s", "-f", "Makefile", "-f", str(extra), "print-vars"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_makefile_data_defaults_to_dot_data_and_an_exported_one_wins(tmp_path):
    data, test_env = make_vars(tmp_path, None, "AUGBENCH_DATA", "TEST_ENV")
    assert data == str(REPO / "data")
    # `make test` without ./data leaves the choice to tests/conftest.py (../shared/data)
    assert test_env == ("" if (REPO / "data").is_dir() else "env -u AUGBENCH_DATA")
    assert make_vars(tmp_path, "/ci/shared/data", "AUGBENCH_DATA", "TEST_ENV") == ["/ci/shared/data", ""]


def test_slurm_up_without_a_local_slurm_says_so(tmp_path):
    import shutil
    import subprocess

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    r = subprocess.run(["make", "-s", "slurm-up", f"SLURM_LOCAL={tmp_path / 'none'}"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "no local SLURM here" in r.stderr and "real cluster" in r.stderr and "sbatch" in r.stderr
