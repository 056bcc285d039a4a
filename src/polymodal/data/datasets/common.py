"""Where built-in datasets live locally, and the one place that may download (pinned URL + sha256)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from polymodal.errors import DataError

ENV_VAR = "POLYMODAL_DATA"


def data_roots() -> list[Path]:
    """Folders searched for datasets, in order: $POLYMODAL_DATA, ../shared/data from cwd and from the repo."""
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    candidates.append(Path.cwd().parent / "shared" / "data")
    candidates.append(Path(__file__).resolve().parents[4].parent / "shared" / "data")
    seen, roots = set(), []
    for c in candidates:
        r = c.resolve()
        if r not in seen and r.is_dir():
            seen.add(r)
            roots.append(r)
    return roots


def find_local(subdir: str, marker: str) -> Path | None:
    """First ``<root>/<subdir>`` that contains ``marker`` (a file or folder name), or None."""
    for root in data_roots():
        if (root / subdir / marker).exists():
            return root / subdir
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, sha256: str, dest: Path, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` unless a copy with the right sha256 is already there.

    The file is written to a temporary name and renamed only after its checksum matches, so a failed or
    tampered download never replaces good data.
    """
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
            while block := resp.read(1 << 20):
                out.write(block)
        got = sha256_file(Path(tmp))
        if got != sha256:
            raise DataError(f"download of {url} has sha256 {got[:12]}…, expected {sha256[:12]}…; not saved")
        os.replace(tmp, dest)
    except OSError as exc:
        raise DataError(
            f"cannot download {url}: {exc}; put the file at {dest} or point {ENV_VAR} at a folder holding it"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
