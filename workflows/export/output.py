"""Writing an export to disk without ever destroying a file biodiscover did not write.

Rules (issue 12, items 10 and 12):

* An existing output is replaced only with ``force``; a missing parent folder, a
  file where a folder goes (or the reverse) and a symbolic link as the output are
  refused with or without it: biodiscover never writes through a link.
* A folder export (csv, fasta) leaves a manifest (:data:`MANIFEST`) naming each
  file it wrote with its SHA-256, signed with a per-user key
  (:func:`export_key`). ``force`` deletes a file only when the manifest verifies
  and the file still has the checksum biodiscover wrote: a file a person edited,
  added, or that a forged manifest names, is never deleted — the export refuses
  and names it. Entries are never followed through links, and the folder itself
  is never removed, so ``-o .`` inside a previous export works in place.
* A single-file export (html, json, a DwC-A zip) has no folder for a manifest: each one written is recorded
  in the user's config folder (:data:`WRITTEN_FILES`: its real path and SHA-256, signed with the same key), and
  ``force`` replaces a file only while that record verifies and the file is unchanged.
* Every file is written under a temporary name and renamed into place (a crash
  leaves the previous file or the new one, never half of one) and gets the mode
  the user's umask gives a new file, not the 0600 of a temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Mapping

from biodiscover.storage.errors import InputError, Interrupted, OutputNotWritten
from biodiscover.storage.settings import config_dir

log = logging.getLogger(__name__)

#: Written into every folder export: which files it wrote, with checksums, signed.
MANIFEST = ".biodiscover-export.json"
KEY_FILE = "export.key"
#: In the user's config folder: the single-file exports this user wrote (real path → SHA-256), signed.
WRITTEN_FILES = "written-exports.json"
#: the most single-file exports remembered (the oldest are forgotten: --force then refuses them, never deletes)
WRITTEN_MAX = 2000


def _umask() -> int:
    """The process umask (read and restored at once: Python has no read-only call)."""
    mask = os.umask(0o022)  # pragma: no mutate a probe: the mask set here is restored on the next line
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets here: 0666 minus the umask (what ``open(…, "w")`` would give)."""
    return 0o666 & ~_umask()


def folder_mode() -> int:
    return 0o777 & ~_umask()


def export_key() -> bytes | None:
    """This user's key for signing export manifests, created (mode 0600) on first use.

    Why a key: a manifest is a file in the output folder and anyone who can write
    there can write one. Signed, a manifest someone else made (naming your
    ``notes.txt`` with its checksum) does not verify and deletes nothing. None
    when the key cannot be stored (read-only home): manifests are then unsigned,
    and an unsigned manifest never authorises a deletion.
    """
    path = config_dir() / KEY_FILE
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except OSError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32).hex().encode("ascii"))
        return path.read_bytes()
    except FileExistsError:  # another process made it meanwhile, or a short (empty, cut) key is there
        try:
            data = path.read_bytes()
        except OSError:
            return None
        # a short key is no key: an empty one would let anyone sign a manifest
        return data if len(data) >= 32 else None
    except OSError as exc:
        log.warning("cannot store the export key in %s (%s); export manifests are unsigned", path, exc)
        return None


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _signature(body: Mapping[str, object], key: bytes) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def read_manifest(folder: Path) -> dict[str, str]:
    """{file name: sha256} from ``folder``'s manifest when it is biodiscover's and verifies, else {}."""
    return _signed_files(folder / MANIFEST)


def _signed_files(path: Path) -> dict[str, str]:
    """The ``files`` table ({name or path: sha256}) of the JSON document at ``path`` when its signature verifies
    with this user's key (:func:`export_key`); else {}. A link is never read."""
    try:
        if path.is_symlink() or not path.is_file():
            return {}
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        return {}
    key = export_key()
    sig = doc.get("signature")
    body = {k: v for k, v in doc.items() if k != "signature"}
    if key is None or not isinstance(sig, str) or not hmac.compare_digest(sig, _signature(body, key)):
        return {}
    return {str(k): str(v) for k, v in doc["files"].items()}


def _write_manifest(folder: Path, fmt: str, files: Mapping[str, str]) -> None:
    body: dict[str, object] = {"format": fmt, "files": dict(files)}
    key = export_key()
    if key is not None:
        body["signature"] = _signature(body, key)
    atomic_write(folder / MANIFEST, json.dumps(body, indent=1).encode("utf-8"))


def _written_files() -> dict[str, str]:
    """{real path: sha256} of the single-file exports recorded in :data:`WRITTEN_FILES`, when the record verifies
    with this user's key; else {} (nothing may be replaced)."""
    return _signed_files(config_dir() / WRITTEN_FILES)


def remember_written(path: Path, sha: str) -> None:
    """Record that this export (or ``split``: its table) wrote ``path`` with ``sha`` (dropping entries whose file is
    gone or changed, the oldest beyond :data:`WRITTEN_MAX`). A record that cannot be stored is logged: --force then
    refuses the file."""
    key = export_key()
    if key is None:
        return
    files = {k: v for k, v in _written_files().items() if k != str(path) and Path(k).is_file()}
    files[str(path)] = sha
    body: dict[str, object] = {"files": dict(list(files.items())[-WRITTEN_MAX:])}
    body["signature"] = _signature(body, key)
    try:
        atomic_write(config_dir() / WRITTEN_FILES, json.dumps(body, indent=1).encode("utf-8"))
    except OSError as exc:
        log.warning("cannot record the export %s in %s (%s): --force will not replace it", path, config_dir(), exc)


def written_by_us(out: Path) -> bool:
    """``out`` is a single file an export (or ``split``) of this user wrote, unchanged since (:data:`WRITTEN_FILES`)."""
    recorded = _written_files().get(str(out.resolve()))
    return recorded is not None and out.is_file() and not out.is_symlink() and sha256_file(out) == recorded


def replaceable(folder: Path) -> tuple[dict[str, str], list[str]]:
    """(files a previous export wrote and nobody changed, entries that must not be deleted).

    An entry is deletable only when the signed manifest names it, it is a plain
    file (not a link, not a folder) and its SHA-256 is the one recorded.
    """
    written = read_manifest(folder)
    ours: dict[str, str] = {}
    foreign: list[str] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name == MANIFEST:
            continue
        st = entry.lstat()
        if entry.name in written and stat.S_ISREG(st.st_mode) and sha256_file(entry) == written[entry.name]:
            ours[entry.name] = written[entry.name]
        elif entry.name in written and stat.S_ISREG(st.st_mode):
            foreign.append(f"{entry.name} (changed since biodiscover wrote it)")
        else:
            foreign.append(entry.name)
    return ours, foreign


def check_output(out: Path, *, force: bool, folder: bool | None = None, fmt: str | None = None) -> None:
    """Refuse what this export must not write over (see the module docstring); returns when safe.

    ``folder``: the format writes a folder (True), one file (False), unknown (None). The place it goes must take
    files (``storage.validation.unwritable_place``, the probe every verb's outputs go through): a read-only file
    system or folder is refused here, before anything is read or written, not after earlier formats of the same
    command were written (e34 attack E4).
    """
    from biodiscover.storage.validation import unwritable_place

    try:
        _check_output(out, force=force, folder=folder, fmt=fmt)
        # an existing folder takes the files; a new output's folder must exist, and a file on the way
        # (``regfile/x.zip``: e34 attack E1) is named
        why = unwritable_place(out / MANIFEST if out.is_dir() else out, new_folder=False)
    except PermissionError:
        raise OutputNotWritten(out, "permission denied") from None
    if why is not None:
        raise OutputNotWritten(out, why)


def _check_output(out: Path, *, force: bool, folder: bool | None, fmt: str | None) -> None:
    what = f"the {fmt} export" if fmt else "this export"
    if out.is_symlink():
        raise InputError(f"{out} is a symbolic link; give the real path (biodiscover never writes through a link)")
    if out.exists():
        if folder is True and not out.is_dir():
            raise InputError(f"{out} is a file; {what} writes a folder (give a folder name)")
        if folder is False and out.is_dir():
            raise InputError(f"{out} is a folder; {what} writes one file (give a file name)")
        if out.is_dir() and not any(out.iterdir()):
            return
        if not force:
            raise InputError(f"{out} already exists; pass --force to overwrite it")
        if out.is_dir():
            _, foreign = replaceable(out)
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                raise InputError(f"refusing to replace {out}: it holds files no {fmt or ''} export wrote "
                                 f"({shown}); choose a new or empty folder")
        elif not out.is_file():
            raise InputError(f"{out} is not a regular file; refusing to replace it")
        elif not written_by_us(out):
            raise InputError(f"refusing to replace {out}: biodiscover did not write it (or it was changed since); "
                             "choose a new file name")
        return


#: What an output looks like on disk (:func:`output_state`): None where nothing is there.
OutputState = tuple[tuple[str, int, int, int], ...] | None


def output_state(out: Path) -> OutputState:
    """``out`` as it is now: (name, inode, mtime, size) of the file, or of the folder and each entry in it; None
    where nothing is there. Compared before and after an interrupted export to say whether it wrote anything.

    Taken before the output is checked, so a place that cannot be looked at (``regfile/x.zip``: not a directory;
    a folder that cannot be read) is what it can be seen to be, never an error: ``check_output`` says what is
    wrong there in one line (a NotADirectoryError traceback had: e34 attack E1)."""
    try:
        st = out.lstat()
    except OSError:
        return None
    entries = [(out.name, st.st_ino, st.st_mtime_ns, st.st_size)]
    if stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(OSError):
            for entry in sorted(os.scandir(out), key=lambda e: e.name):
                s = entry.stat(follow_symlinks=False)
                entries.append((entry.name, s.st_ino, s.st_mtime_ns, s.st_size))
    return tuple(entries)


def interrupted_export(out: Path, before: OutputState) -> Interrupted:
    """What a Ctrl-C during an export left at ``out`` (its state before, :func:`output_state`), as one line: nothing
    written (and whether the re-run needs ``--force``), or part of it. A folder the export made and left empty is
    removed first (nothing of it was written).

    Why: the general interrupt line ("finished steps are kept …; re-run the same command to go on") said nothing of
    the output, and a user could not tell whether the re-run would be refused for want of ``--force`` (e27)."""
    if before is None and out.is_dir() and not out.is_symlink():
        try:
            out.rmdir()  # only an empty folder: what the export made before it wrote anything
        except OSError:
            pass
    after = output_state(out)
    if after == before:
        where = f"{out} does not exist" if before is None else f"{out} is as it was"
        return Interrupted(f"interrupted: nothing was written ({where}); re-run the same command"
                           + (" (no --force needed)." if before is None else "."))
    return Interrupted(f"interrupted while writing {out}: it may hold part of this export; re-run the same command "
                       "with --force to write it whole (only files biodiscover wrote are replaced).")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename, with the umask's mode."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: what a full disk (or quota, or read-only file system, or a refused permission) says while an export writes (any
#: other failure: the OS's own words)
_OS_REASON = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied"}


def _not_written(out: Path, exc: OSError, made: bool) -> OutputNotWritten:
    """One error naming ``out`` and the OS's reason for an export that could not be written, after removing the
    folder this export made for it while it is still empty.

    Why: "error: No space left on device (check the permissions …)" named no path, and the export's folder was left
    behind empty (e31 review F14); any other failure (a name too long for the temporary file, ENOENT from a
    pseudo-file system) was a traceback (e34 attack E5)."""
    why = _OS_REASON.get(exc.errno or 0) or (exc.strerror[:1].lower() + exc.strerror[1:] if exc.strerror else str(exc))
    if made and out.is_dir() and not out.is_symlink():
        with contextlib.suppress(OSError):
            out.rmdir()  # only an empty folder: what the export made before it wrote anything
    return OutputNotWritten(out, why, " (nothing of this export was kept)")


def write_file(out: Path, data: bytes, *, force: bool, fmt: str) -> tuple[Path, ...]:
    check_output(out, force=force, folder=False, fmt=fmt)
    try:
        atomic_write(out, data)
    except OSError as exc:
        raise _not_written(out, exc, made=False) from None
    remember_written(out.resolve(), hashlib.sha256(data).hexdigest())
    return (out,)


def write_folder(out: Path, files: Mapping[str, bytes], *, force: bool, fmt: str) -> tuple[Path, ...]:
    """Write ``files`` (name → bytes; names already safe) into folder ``out`` in place.

    Order, so that a crash at any point leaves a manifest covering every file
    biodiscover put there: new files under temporary names; a manifest naming old
    and new; old files removed and new ones renamed into place; the final manifest.
    """
    check_output(out, force=force, folder=True, fmt=fmt)
    made = not out.exists()
    try:
        if made:
            out.mkdir(mode=folder_mode())
        old, foreign = replaceable(out)
        if foreign:  # changed between the check and now: check again, refuse naming them
            check_output(out, force=True, folder=True, fmt=fmt)
        temps: dict[str, Path] = {}
        new: dict[str, str] = {}
        try:
            for name, data in files.items():
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
                temps[name] = Path(tmp)  # before writing: a write that fails (disk full) must not leave it behind
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.chmod(tmp, file_mode())
                new[name] = hashlib.sha256(data).hexdigest()
            _write_manifest(out, fmt, {**old, **{p.name: new[n] for n, p in temps.items()}, **new})
            for name in old:
                if name not in files:
                    (out / name).unlink(missing_ok=True)
            for name, temp in temps.items():
                os.replace(temp, out / name)
            temps = {}
            _write_manifest(out, fmt, new)
        finally:
            for temp in temps.values():
                temp.unlink(missing_ok=True)
    except OSError as exc:
        raise _not_written(out, exc, made) from None
    return tuple(out / n for n in files)
