"""`augbench rows import PATH [--results ROOT]`: rows produced elsewhere (a lent GPU) into ROOT/runs/.
(`augbench rows verify` retrains rows to check them, a layer up: augbench.sweeps.verify, the `rows` command.)

PATH is a folder or a .tar (.tar.gz, ...) holding `<run_id>.json` rows and, optionally, their
per-epoch logs `<run_id>.csv` beside them (they go to ROOT/logs/). Every file is read and checked
first (the row schema, the file name = the row's run_id, the log a CSV with an `epoch` column);
one bad file stops the import naming it, with nothing written. Then each row is written with an
`imported` record (source, time, the file's sha256, the PROVENANCE.md found next to the rows or one
folder up, copied to ROOT/imports/<source name>/). A row already done here is never overwritten,
so importing the same rows again changes nothing; rows still `running` elsewhere are skipped.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from augbench.errors import UserError
from augbench.store.atomic import atomic_write
from augbench.store.rows import DONE, RUNNING, RunStore, check_row

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ImportRowsError(UserError):
    pass


@dataclass
class Incoming:
    run_id: str
    source: str  # the file, or the tar and its member
    row: dict
    sha256: str
    log: bytes | None = None


def add_parser(sub, common) -> None:
    """The `import` action of `augbench rows` (the command: augbench.sweeps.verify)."""
    i = sub.add_parser("import", help="import rows (a folder or a .tar) into <results>/runs", parents=[common])
    i.add_argument("path", help="a folder or a .tar of <run_id>.json rows (and <run_id>.csv logs)")
    i.add_argument("--results", metavar="ROOT", help="results root (default: $AUGBENCH_RESULTS or ./results)")


def read_source(path: Path) -> tuple[dict[str, tuple[str, bytes]], bytes | None]:
    """name -> (where, bytes) for every .json / .csv, and PROVENANCE.md's bytes if there is one."""
    files: dict[str, tuple[str, bytes]] = {}
    provenance = None
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file() and f.suffix in (".json", ".csv"):
                if f.name in files:
                    raise ImportRowsError(f"{f}: a second file named {f.name} (also {files[f.name][0]})")
                files[f.name] = (str(f), f.read_bytes())
        for cand in (path / "PROVENANCE.md", path.parent / "PROVENANCE.md"):
            if cand.is_file():
                provenance = cand.read_bytes()
                break
        return files, provenance
    if not path.is_file():
        raise ImportRowsError(f"{path}: no such folder or file")
    try:
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                name = Path(m.name).name
                if not m.isfile() or Path(m.name).is_absolute() or ".." in Path(m.name).parts:
                    continue  # links, folders, paths out of the archive: never extracted
                if name == "PROVENANCE.md":
                    provenance = tar.extractfile(m).read()
                elif name.endswith((".json", ".csv")):
                    if name in files:
                        raise ImportRowsError(f"{path}: two members named {name}")
                    files[name] = (f"{path}:{m.name}", tar.extractfile(m).read())
    except tarfile.TarError as e:
        raise ImportRowsError(f"{path}: not a folder or a readable tar archive ({e})") from None
    return files, provenance


def parse(files: dict[str, tuple[str, bytes]]) -> list[Incoming]:
    """Every row checked, each log matched to its row; all problems at once, naming the files."""
    rows: dict[str, Incoming] = {}
    problems: list[str] = []
    for name, (where, data) in files.items():
        stem = name.rsplit(".", 1)[0]
        if not RUN_ID.match(stem):
            problems.append(f"{where}: not named <run_id>.json or <run_id>.csv")
        elif name.endswith(".json"):
            try:
                row = check_row(json.loads(data.decode()), where, full=True)
                if row["run_id"] != stem:
                    raise ValueError(f"{where}: holds run {row['run_id']}, but the file is named {name}")
                rows[stem] = Incoming(stem, where, row, hashlib.sha256(data).hexdigest())
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                problems.append(f"{where}: not valid JSON ({e})")
            except ValueError as e:
                problems.append(str(e))
    for name, (where, data) in files.items():
        stem = name.rsplit(".", 1)[0]
        if name.endswith(".csv") and RUN_ID.match(stem):
            try:
                header = next(csv.reader(io.StringIO(data.decode())), [])
            except (UnicodeDecodeError, csv.Error) as e:
                problems.append(f"{where}: not a CSV log ({e})")
                continue
            if "epoch" not in header:
                problems.append(f"{where}: a per-epoch log needs an 'epoch' column, got {header}")
            elif stem not in rows:
                problems.append(f"{where}: a log without its row {stem}.json")
            else:
                rows[stem].log = data
    if problems:
        raise ImportRowsError("nothing imported; fix or remove these files:\n  " + "\n  ".join(problems))
    if not rows:
        raise ImportRowsError("no <run_id>.json rows found")
    return [rows[k] for k in sorted(rows)]


def import_rows(path: str | Path, root: str | Path | None = None) -> dict[str, list[str]]:
    """Import; returns run ids by outcome: imported, kept (done here, or imported before), skipped (running)."""
    path = Path(path).resolve()
    store = RunStore.at(root)
    files, provenance = read_source(path)
    incoming = parse(files)
    out: dict[str, list[str]] = {"imported": [], "kept": [], "skipped": []}
    plan = []
    for inc in incoming:
        old = store.read_row(inc.run_id)  # a corrupt row here stops the import before any write
        same = old is not None and {k: v for k, v in old.items() if k != "imported"} == inc.row
        if old is not None and (old["status"] == DONE or same):
            out["kept"].append(inc.run_id)
        elif inc.row["status"] == RUNNING:
            out["skipped"].append(inc.run_id)
        else:
            plan.append(inc)
    if not plan:
        return out
    store.check_writable()
    record = {"source": str(path), "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if provenance is not None:
        prov = atomic_write(store.root / "imports" / path.name.split(".")[0] / "PROVENANCE.md", provenance)
        record.update(provenance=str(prov.relative_to(store.root)),
                      provenance_sha256=hashlib.sha256(provenance).hexdigest())
    for inc in plan:
        if inc.log is not None:
            atomic_write(store.log_path(inc.run_id), inc.log)
        store.write_row({**inc.row, "imported": {**record, "file": inc.source, "sha256": inc.sha256}})
        out["imported"].append(inc.run_id)
    return out


def main(args) -> int:
    """`augbench rows import PATH`."""
    out = import_rows(args.path, args.results)
    root = RunStore.at(args.results).root
    print(f"{len(out['imported'])} row(s) imported into {root / 'runs'}, {len(out['kept'])} already done here "
          f"(kept), {len(out['skipped'])} still running elsewhere (skipped)")
    return 0
