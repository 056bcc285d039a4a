"""Files that survive a crash: atomic text/JSON writes, weights in safetensors, append-only JSON lines.

Every write goes to a temporary file in the same folder, is flushed to disk and renamed over the target, so a
reader (or a process restarted after a kill) sees the old file or the new one, never half of one. Files are
written 0644 and folders 0755: a run directory is for sharing (``mkstemp`` alone would leave them 0600).
No pickle anywhere: tensors go to safetensors, everything else to JSON. A write the file system refuses for
lack of space (ENOSPC, EDQUOT, or EFBIG from a file-size limit) is one ``DiskFull`` line naming the folder;
the temporary file is removed and the previous file stays.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from polymodal.errors import CheckpointError, DiskFull

FILE_MODE = 0o644
DIR_MODE = 0o755
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def refused_for_space(exc: BaseException) -> int | None:
    """The errno when ``exc`` is the file system refusing a write for space, else None (safetensors reports
    the OS error inside its message: "... I/O error: No space left on device (os error 28)")."""
    if isinstance(exc, OSError):
        return exc.errno if exc.errno in NO_SPACE else None
    found = re.search(r"os error (\d+)", str(exc)) if isinstance(exc, SafetensorError) else None
    return int(found.group(1)) if found and int(found.group(1)) in NO_SPACE else None


@contextmanager
def space_for(folder: Path, what: str, keeps: str = "the files already there are kept") -> Iterator[None]:
    """Turn a write refused for space inside the block into one ``DiskFull`` line naming ``folder``."""
    try:
        yield
    except (OSError, SafetensorError) as exc:
        code = refused_for_space(exc)
        if code is None:
            raise
        raise DiskFull(
            f"cannot write {what} in {folder}: {os.strerror(code)}; free space there (or use another folder) "
            f"and run again — {keeps}"
        ) from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


@contextmanager
def cleanup(tmp: Path) -> Iterator[None]:
    """Remove the temporary file ``tmp`` when the block fails (a full disk gets its space back)."""
    try:
        yield
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_dir(path: Path) -> Path:
    """``path`` and its missing parents, each new folder 0755."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for p in missing:
        os.chmod(p, DIR_MODE)
    return path


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file + rename (readers never see half a file); mode 0644."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    keeps = f"the previous {path.name} is kept"
    with space_for(path.parent, path.name, keeps), cleanup(Path(tmp)), os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fchmod(f.fileno(), FILE_MODE)
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2))


def read_json(path: Path, what: str = "") -> Any:
    """The JSON in ``path``; a missing, unreadable or malformed file is one CheckpointError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing{what}; give a finished run directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} cannot be read ({exc}){what}") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}){what}; restore the file or retrain the run"
        ) from None


def append_line(path: Path, text: str) -> None:
    """Append one line and push it to disk before returning (an epoch's metrics survive a kill after it)."""
    with space_for(path.parent, path.name, "its earlier lines are kept"), open(path, "a", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, FILE_MODE)


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """Each JSON object line of ``path``; a blank, torn or non-object line (a kill while appending) is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def weight_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with each shared tensor once (safetensors refuses aliases, e.g. tied GPT embeddings);
    the parameter that owns it keeps it, and loading re-ties the rest through the module."""
    out, seen = {}, set()
    for k, v in model.state_dict(keep_vars=False).items():
        ptr = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if ptr in seen:
            continue
        seen.add(ptr)
        out[k] = v.detach().contiguous().cpu()
    return out


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Tensors to ``path`` (safetensors) atomically: a temporary file in the same folder, flushed, renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    with space_for(path.parent, path.name, f"the previous {path.name}, if any, is kept"), cleanup(tmp):
        save_file(tensors, str(tmp))
        os.chmod(tmp, FILE_MODE)
        fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def save_weights(model: nn.Module, path: Path) -> None:
    """Model weights to ``path`` so that ``path`` is always the old or the new weights, never half."""
    save_tensors(weight_tensors(model), path)


def load_weights(model: nn.Module, path: Path) -> None:
    """Load safetensors weights into ``model``; a missing, torn or mismatched file is one CheckpointError."""
    try:
        state = load_file(str(path))
    except (FileNotFoundError, SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read weights {path}: {exc}; the run may be incomplete — retrain") from None
    aliases = set(model.state_dict()) - set(weight_tensors(model))  # tied tensors saved under their owner
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - aliases:
            raise RuntimeError(f"missing keys {sorted(set(missing) - aliases)}, unexpected keys {sorted(unexpected)}")
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"weights {path} do not fit the model built from its recipe: {first}") from None
