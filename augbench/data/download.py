"""`augbench data get NAME`: fetch a dataset's official archive with the standard library (no
torchvision), check its published MD5, and unpack it safely under the data root
(``$AUGBENCH_DATA``, default ``./data``) in the layout ``load_dataset`` reads:

    cifar10   -> <root>/cifar10/cifar-10-batches-py/
    cifar100  -> <root>/cifar100/cifar-100-python/
    stl10     -> <root>/stl10/stl10_binary/

A dataset already there is left alone. Offline, ``--archive PATH`` unpacks an archive fetched
elsewhere (after the same checksum). ``$AUGBENCH_DATA_MIRROR`` (a base URL) or ``--url`` fetch from
another server (a local mirror; the tests' server on 127.0.0.1).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from augbench.data.errors import DataError
from augbench.env import data_root

MIRROR_ENV = "AUGBENCH_DATA_MIRROR"  # a base URL that replaces each archive's official one
TIMEOUT_S = 60  # per network read


@dataclass(frozen=True)
class Archive:
    file: str  # the archive's file name
    base_url: str  # where it is published (the file name is appended)
    md5: str  # the published checksum
    folder: str  # the one top-level folder inside, unpacked as <root>/<name>/<folder>/
    size: str  # for the messages

    @property
    def url(self) -> str:
        return self.base_url + self.file


# The official archives and their published checksums (the same ones torchvision checks).
ARCHIVES: dict[str, Archive] = {
    "cifar10": Archive("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/",
                       "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py", "163 MB"),
    "cifar100": Archive("cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/",
                        "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python", "161 MB"),
    "stl10": Archive("stl10_binary.tar.gz", "http://ai.stanford.edu/~acoates/stl10/",
                     "91f7769df0f17e558f3565bffb0c7dfb", "stl10_binary", "2.5 GB"),
}
NAMES = tuple(ARCHIVES)
# data set names whose files another name's archive holds (load_dataset's PRETRAIN_ON)
SOURCES = {"stl10-unlabeled": "stl10"}


def archive_for(dataset: str) -> str | None:
    """The name `augbench data get` fetches `dataset`'s files under (stl10-unlabeled: stl10), or None."""
    name = SOURCES.get(dataset, dataset)
    return name if name in ARCHIVES else None


def _archive(name: str) -> Archive:
    if name not in ARCHIVES:
        raise DataError(f"augbench data get: no download for {name!r}; known: {list(ARCHIVES)} "
                        f"(other data: put image folders under $AUGBENCH_DATA, see README)")
    return ARCHIVES[name]


def _root(root: str | Path | None) -> Path:
    return Path(root).expanduser() if root is not None else data_root()


def target(name: str, root: str | Path | None = None) -> Path:
    """Where ``name`` is unpacked: <root>/<name>/<the archive's folder>/."""
    return _root(root) / name / _archive(name).folder


def present(name: str, root: str | Path | None = None) -> Path | None:
    """The folder ``name`` is already in (the unpacked archive, or CIFAR as image folders), else None."""
    base = _root(root)
    folder = _archive(name).folder
    for cand in (base / name / folder, base / folder):
        if cand.is_dir():
            return cand
    if name in ("cifar10", "cifar100") and (base / name / "train").is_dir():
        return base / name  # the image-folder layout load_dataset also reads
    return None


def source_url(name: str, url: str | None = None) -> str:
    """--url, else $AUGBENCH_DATA_MIRROR + the file name, else the official URL."""
    if url:
        return url
    a = _archive(name)
    mirror = os.environ.get(MIRROR_ENV)
    return f"{mirror.rstrip('/')}/{a.file}" if mirror else a.url


def how_to_get(name: str, root: str | Path | None = None) -> str:
    """One sentence for a missing-data message: the command that fetches ``name``."""
    a = _archive(name)
    cmd = f"augbench data get {name}"
    if root is not None and Path(root).expanduser().resolve() != data_root().resolve():
        cmd += f" --root {root}"
    return (f"`{cmd}` downloads it ({a.file}, {a.size}, from {a.url}) and unpacks it into "
            f"{target(name, root)}/; without internet, fetch that file elsewhere and run "
            f"`{cmd} --archive PATH/{a.file}`")


def offline_help(name: str, root: str | Path | None = None) -> str:
    a = _archive(name)
    return (f"Without internet here: download {a.url} ({a.size}, md5 {a.md5}) on a machine "
            f"that has it, copy it to this one, and run `augbench data get {name} --archive PATH/{a.file}` "
            f"(it checks the md5 and unpacks it into {target(name, root)}/); or set ${MIRROR_ENV} to a "
            f"server that holds {a.file}")


def get(name: str, root: str | Path | None = None, *, archive: str | Path | None = None, url: str | None = None,
        keep_archive: bool = False, log=print) -> Path:
    """Make ``name`` present under the data root: download (or take ``archive``), check the MD5,
    unpack. A no-op when it is already there. Returns the dataset's folder."""
    a = _archive(name)
    base = _root(root)
    have = present(name, base)
    if have is not None:
        log(f"{name}: already there ({have}); nothing to do")
        return have
    dest = base / name
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{dest}: cannot create the data folder ({e.strerror or e}); set $AUGBENCH_DATA "
                        f"or --root to a writable folder") from None
    try:
        return _get(name, a, base, dest, archive, url, keep_archive, log)
    except BaseException:
        try:
            dest.rmdir()  # only when empty: a failed first get leaves no empty <root>/<name>/ behind
        except OSError:
            pass
        raise


def _get(name: str, a: Archive, base: Path, dest: Path, archive, url, keep_archive: bool, log) -> Path:
    downloaded = None
    if archive is not None:
        path = Path(archive).expanduser()
        if not path.is_file():
            raise DataError(f"--archive {path}: no such file (expected {a.file} from {a.url})")
        check_md5(path, a, source=str(path))
    else:
        path = dest / a.file
        if path.is_file() and md5sum(path) == a.md5:  # left by an earlier run that stopped before unpacking
            log(f"{name}: using {path} (checksum ok)")
            downloaded = path
        else:
            downloaded = path = _download(name, a, source_url(name, url), dest, base, log)
    log(f"{name}: unpacking {path.name} into {dest}/")
    out = unpack(path, dest, a.folder)
    if downloaded is not None and not keep_archive:
        downloaded.unlink(missing_ok=True)
    log(f"{name}: ready in {out}")
    return out


# ---------------------------------------------------------------------- download and checksum
def md5sum(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_md5(path: Path, a: Archive, source: str) -> None:
    got = md5sum(path)
    if got != a.md5:
        raise DataError(f"{source}: md5 {got}, expected {a.md5} for {a.file} (a partial or different "
                        f"file); nothing was unpacked. Get {a.file} again from {a.url}")


def _download(name: str, a: Archive, url: str, dest: Path, base: Path, log) -> Path:
    final = dest / a.file
    part = dest / f".{a.file}.part"
    log(f"{name}: downloading {url} ({a.size}) ...")
    h = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r, open(part, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0)
            done, shown = 0, time.monotonic()
            for chunk in iter(lambda: r.read(1 << 20), b""):
                f.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if time.monotonic() - shown >= 10:  # a line every 10 s on long downloads
                    shown = time.monotonic()
                    log(f"{name}: {done / 1e6:.0f}" + (f" / {total / 1e6:.0f}" if total else "") + " MB")
            if total and done != total:
                raise http.client.IncompleteRead(b"", total - done)
    except (OSError, http.client.HTTPException) as e:
        part.unlink(missing_ok=True)
        if isinstance(e, urllib.error.HTTPError):
            why = f"HTTP {e.code} {e.reason}"
        elif isinstance(e, urllib.error.URLError):
            why = str(e.reason)
        else:
            why = f"{type(e).__name__}: {e}"
        raise DataError(f"{name}: could not download {url} ({why}). {offline_help(name, base)}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if h.hexdigest() != a.md5:
        part.unlink(missing_ok=True)
        raise DataError(f"{name}: {url} sent a file with md5 {h.hexdigest()}, expected {a.md5} for {a.file}; "
                        f"it was deleted and nothing was unpacked. Try again, or {offline_help(name, base)}")
    os.replace(part, final)
    return final


# ---------------------------------------------------------------------- safe unpacking
def _check_member(m: tarfile.TarInfo, folder: str, source: Path) -> None:
    """Only plain files and folders under `folder`/: no absolute paths, no '..', no links or devices."""
    p = PurePosixPath(m.name)
    parts = [x for x in p.parts if x not in ("", ".")]
    if p.is_absolute() or ".." in parts or not parts or parts[0] != folder or "\\" in m.name:
        raise DataError(f"{source}: refusing to unpack {m.name!r}: it lies outside {folder}/ (the target "
                        f"folder); nothing was unpacked")
    if not (m.isfile() or m.isdir()):
        raise DataError(f"{source}: refusing to unpack {m.name!r}: a link or special file; nothing was unpacked")


def unpack(archive: Path, dest: Path, folder: str) -> Path:
    """Unpack `archive` (whose members all lie under `folder`/) into dest/folder/. Everything goes to
    a staging folder first and is moved into place only when the whole archive passed the checks,
    so a refused or broken archive leaves nothing behind."""
    final = dest / folder
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
    try:
        try:
            with tarfile.open(archive, "r|*") as tar:  # one pass over the (compressed) stream
                for m in tar:
                    _check_member(m, folder, archive)
                    if hasattr(tarfile, "data_filter"):  # 3.12, and 3.8-3.11 security releases
                        tar.extract(m, staging, filter="data")
                    else:
                        tar.extract(m, staging)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise  # disk full, permissions: the CLI names the path
            raise DataError(f"{archive}: not a readable .tar.gz archive ({e}); nothing was unpacked") from None
        if not (staging / folder).is_dir():
            raise DataError(f"{archive}: holds no {folder}/ folder; nothing was unpacked")
        if final.exists():
            raise DataError(f"{final} appeared while unpacking (another `augbench data get`?); kept it")
        os.replace(staging / folder, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


# ---------------------------------------------------------------------- the `augbench data` command
def add_arguments(p) -> None:
    from augbench.errors import common_options

    import argparse

    sub = p.add_subparsers(dest="data_cmd", metavar="ACTION", required=True)
    files = "\n".join(f"  {k:9s} {a.url} ({a.size}, md5 {a.md5})\n            -> $AUGBENCH_DATA/{k}/{a.folder}/"
                      for k, a in ARCHIVES.items())
    g = sub.add_parser("get", parents=[common_options(leaf=True)], formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="download a dataset, check its md5 and unpack it under $AUGBENCH_DATA",
                       description="Download NAME's official archive (the standard library; no torchvision), check its\n"
                                   "published md5 and unpack it under the data root ($AUGBENCH_DATA, default ./data),\n"
                                   "where training finds it. Nothing to do when it is already there.",
                       epilog=f"The archives:\n{files}\n\nWithout internet: fetch the archive on another machine, copy "
                              f"it here and run\n`augbench data get NAME --archive PATH` (the same md5 check).")
    g.add_argument("name", choices=NAMES, help="the dataset")
    g.add_argument("--root", metavar="DIR", help="data root (default: $AUGBENCH_DATA or ./data)")
    g.add_argument("--archive", metavar="PATH", help="unpack this already-downloaded archive (after checking "
                                                    "its md5) instead of downloading")
    g.add_argument("--url", help=f"download from this URL instead of the official one (or set ${MIRROR_ENV} "
                                 f"to a base URL)")
    g.add_argument("--keep-archive", action="store_true", help="keep the downloaded .tar.gz after unpacking")


def main(args) -> int:
    get(args.name, args.root, archive=args.archive, url=args.url, keep_archive=args.keep_archive,
        log=lambda msg: print(msg, flush=True))
    return 0
