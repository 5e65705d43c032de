"""File and argument helpers shared by the experiment commands: what a command may read, where it may
write, and writing so that a reader never sees half a result.

Outputs. Every command that writes refuses an existing non-empty output (a folder with files in it, a
file with bytes in it) unless asked to replace it (``--overwrite``), and then replaces it in one step:
the new output is written under a temporary sibling name (``.<name>.<pid>.<random>.partial``) and renamed
into place once complete (:func:`staged_dir`, :func:`staged_files`). A temporary name carries the id of
the process that made it, so a later command removes what a killed one left behind
(:func:`remove_stale`) and never what a running one is writing.

Inputs. :func:`input_file` (an argparse type) says what a path is when it is not a regular file (a
folder, a named pipe, a device) rather than "no such file"; :func:`decode_error` turns a
``UnicodeDecodeError`` into a message naming the file, line and column.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

#: Longest value quoted in an error message; longer ones are cut (no megabyte error lines).
MAX_QUOTED = 120

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.(partial|tmp|old)$")


def shorten(text: object, limit: int = MAX_QUOTED) -> str:
    """``text`` as a string of at most about ``limit`` characters (the cut is said)."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


# ------------------------------------------------------------------------------------ argparse types
def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got '{shorten(text)}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got '{shorten(text)}'")
    return value


def seed_argument(text: str) -> int:
    """argparse type of ``--seed``: a whole number >= 0 (below 2**63)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got '{shorten(text)}'")
    return value


def output_path(text: str) -> Path:
    """argparse type of ``--out``: a non-empty path (``--out ''`` would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


def describe_non_file(path: Path) -> str | None:
    """What ``path`` is when it is not a readable regular file (``None`` when it is one)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if stat.S_ISDIR(mode):
        return "is a folder, expected a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), expected a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, expected a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, expected a regular file"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def check_input_file(path: Path, what: str = "") -> Path:
    """``path`` if it is a readable regular file; ``FileNotFoundError`` saying what it is otherwise."""
    problem = describe_non_file(Path(path))
    if problem is not None:
        prefix = f"{what} " if what else ""
        raise FileNotFoundError(f"{prefix}{path}: {problem}")
    return Path(path)


def input_file(text: str) -> Path:
    """argparse type of a file argument: an existing, readable regular file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file, got an empty string")
    problem = describe_non_file(Path(text))
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{shorten(text)}: {problem}")
    return Path(text)


def decode_error(path: Path, err: UnicodeDecodeError | None = None, data: bytes | None = None) -> ValueError:
    """A ``ValueError`` naming the file, line and column of the first byte that is not UTF-8 (``err``
    from a reader that saw only part of the file is located again in the whole file)."""
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = b""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as full:
        start = full.start
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        return ValueError(
            f"{path}: line {line}, column {column}: byte 0x{data[start : start + 1].hex()} is not UTF-8 "
            f"({full.reason}); save the file as UTF-8"
        )
    reason = f" ({err.reason})" if err is not None else ""
    return ValueError(f"{path}: not UTF-8 text{reason}; save it as UTF-8")


def read_text(path: Path, max_bytes: int | None = None) -> str:
    """A regular file's UTF-8 text; errors name the file (and the line of an undecodable byte)."""
    path = check_input_file(Path(path))
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{path}: {size:,} bytes, more than the {max_bytes:,} expected of such a file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise decode_error(path, err, data) from None


# ------------------------------------------------------------------------------------------ outputs
def prepare_out_dir(path: Path) -> Path:
    """Create the output folder (and parents); refuse a path that is an existing file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: --out must be a folder, but a file of that name exists")
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale(parent: Path, name: str | None = None) -> list[Path]:
    """Remove the temporary siblings (``.<name>.<pid>.*.partial|tmp|old``) in ``parent`` whose process
    is gone (what a killed command left behind); ``name`` limits it to one output. Returns them."""
    removed: list[Path] = []
    if not Path(parent).is_dir():
        return removed
    for path in Path(parent).iterdir():
        match = _TEMP_NAME.match(path.name)
        if not match or (name is not None and match["name"] != name):
            continue
        if pid_alive(int(match["pid"])):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def temp_sibling(path: Path, suffix: str, directory: bool) -> Path:
    prefix = f".{path.name}.{os.getpid()}."
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        return tmp
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def is_nonempty(path: Path) -> bool:
    """A folder with anything in it or a file with any bytes (a symlink counts as existing)."""
    path = Path(path)
    if path.is_dir():
        return any(path.iterdir())
    if path.is_file():
        return path.stat().st_size > 0
    return path.exists() or path.is_symlink()


def check_output(path: Path, overwrite: bool, *, folder: bool, option: str = "--out") -> None:
    """Refuse an existing non-empty output (unless ``overwrite``) and an output of the wrong kind."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{option} {path}: a file of that name exists; expected a folder")
    if not folder and path.is_dir():
        raise IsADirectoryError(f"{option} {path}: is a folder; expected a file name")
    if not overwrite and is_nonempty(path):
        what = "folder is not empty" if folder else "file exists"
        raise FileExistsError(f"{option} {path}: the {what}; pass --overwrite to replace it")
    if folder and path.exists():
        resolved, cwd = path.resolve(), Path.cwd().resolve()
        if resolved in (cwd, *cwd.parents, Path.home().resolve()):
            raise ValueError(f"{option} {path}: is the current folder, one above it or the home folder; "
                             "write into a folder of its own")  # fmt: skip


def replace_dir(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``, replacing what is there (renames only)."""
    if out.is_dir() and not out.is_symlink():
        old = temp_sibling(out, ".old", directory=True)
        old.rmdir()
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if out.exists() or out.is_symlink():
            out.unlink()
        tmp.rename(out)


@contextlib.contextmanager
def staged_dir(out: Path, overwrite: bool = False, option: str = "--out") -> Iterator[Path]:
    """A temporary sibling folder to write an output folder into; renamed to ``out`` when the block
    ends without error, removed otherwise. Refuses a non-empty ``out`` unless ``overwrite``."""
    out = Path(out)
    check_output(out, overwrite, folder=True, option=option)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out.parent, out.name)
    tmp = temp_sibling(out, ".partial", directory=True)
    try:
        yield tmp
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_files(paths: Sequence[Path], overwrite: bool = False, option: str = "--out") -> Iterator[Path]:
    """A temporary folder beside ``paths`` (which share one folder) to write files named as they are;
    each is renamed into place when the block ends without error. Refuses any that exists non-empty
    unless ``overwrite``; a file the block did not write is left as it was."""
    paths = [Path(p) for p in paths]
    parent = paths[0].parent
    for path in paths:
        if path.parent != parent:
            raise ValueError(f"{option} {path}: expected every output in {parent}")
        check_output(path, overwrite, folder=False, option=option)
    parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        remove_stale(parent, path.name)
    tmp = temp_sibling(paths[0], ".partial", directory=True)
    try:
        yield tmp
        for path in paths:
            written = tmp / path.name
            if written.exists():
                os.chmod(written, 0o666 & ~_umask())
                os.replace(written, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see either the old or the complete new content, never a part."""
    path = Path(path)
    tmp = temp_sibling(path, ".tmp", directory=False)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """:func:`write_bytes_atomic` of UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented, key-sorted JSON (stable bytes for the same data)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
