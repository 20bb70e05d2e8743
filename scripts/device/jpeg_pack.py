"""Pack an ImageFolder tree of small JPEGs into one blob + index, and unpack it byte for byte.

Why: the GPU machine receives at most 64 MiB of working tree; CIFAR-10's 60,000 JPEG files are
~57 MB of content but much more as files. One blob per split plus a JSON index keeps every byte of
the original files (so results stay "CIFAR-10 (JPEG copy)") and travels in a few files.

    python scripts/device/jpeg_pack.py pack   $AUGBENCH_DATA/cifar10 .devdata/cifar10
    python scripts/device/jpeg_pack.py unpack .devdata/cifar10 /tmp/data/cifar10
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path


def pack(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        files = sorted(p for p in (src / split).glob("*/*") if p.is_file())
        if not files:
            sys.exit(f"{src / split}: no files to pack")
        index, offset, h = [], 0, hashlib.sha256()
        with open(dst / f"{split}.bin", "wb") as out:
            for p in files:
                data = p.read_bytes()
                out.write(data)
                h.update(data)
                index.append([p.parent.name, p.name, offset, len(data)])
                offset += len(data)
        (dst / f"{split}.json").write_text(json.dumps({"files": index, "sha256": h.hexdigest()}))
        print(f"{split}: {len(files)} files, {offset / 1e6:.1f} MB")
    for extra in ("PROVENANCE.md",):
        if (src / extra).exists():
            (dst / extra).write_bytes((src / extra).read_bytes())


def unpack(src: Path, dst: Path) -> None:
    for split in ("train", "test"):
        meta = json.loads((src / f"{split}.json").read_text())
        blob = (src / f"{split}.bin").read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
            sys.exit(f"{src / split}.bin: checksum mismatch")
        for cls, name, off, n in meta["files"]:
            d = dst / split / cls
            d.mkdir(parents=True, exist_ok=True)
            (d / name).write_bytes(blob[off:off + n])
        print(f"{split}: {len(meta['files'])} files -> {dst / split}")
    if (src / "PROVENANCE.md").exists():
        (dst / "PROVENANCE.md").write_bytes((src / "PROVENANCE.md").read_bytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["pack", "unpack"])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    a = ap.parse_args()
    (pack if a.action == "pack" else unpack)(a.src, a.dst)


if __name__ == "__main__":
    main()
