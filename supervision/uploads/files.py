"""Files of an upload on disk: streamed in, hashed, sniffed, stored by
content.

* Every byte is written as it arrives (a ``.part`` file under
  ``incoming/``), hashed on the way; nothing is held whole in memory.
* A file is what its bytes say: the format its name claims must agree with
  its first bytes (a LAS file starts ``LASF``, an E57 ``ASTM-E57``, a text
  format has no NUL byte ...), else it is refused naming both.
* The client's name never reaches a path: a file is stored as
  ``blobs/<sha256[:2]>/<sha256>.<ext>`` with the extension of the format its
  bytes showed (from a fixed list). The same bytes are stored once.
* A zip archive is unpacked entry by entry with bounds on the number of
  files, the total size and the ratio of each entry; an archive past them,
  or one inside another, is refused.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20

#: extension (from the client's name) -> (format, kind)
FORMATS: dict[str, tuple[str, str]] = {
    ".las": ("las", "scan"),
    ".laz": ("laz", "scan"),
    ".xyz": ("xyz", "scan"),
    ".txt": ("xyz", "scan"),
    ".pts": ("pts", "scan"),
    ".csv": ("csv", "scan"),
    ".dat": ("cass", "scan"),
    ".gsi": ("gsi", "scan"),
    ".e57": ("e57", "scan"),
    ".ply": ("ply", "scan"),
    ".obj": ("obj", "scan"),
    ".stl": ("stl", "scan"),
    ".pcd": ("pcd", "scan"),
    ".dxf": ("dxf", "scan"),
    ".tif": ("tif", "raster"),
    ".tiff": ("tif", "raster"),
    ".asc": ("asc", "raster"),
    ".toml": ("toml", "design"),
    ".md": ("md", "description"),
    ".pdf": ("pdf", "description"),
}
#: the stored file's extension per format (the survey readers go by it)
STORED_EXT = {fmt: ext for ext, (fmt, _) in reversed(FORMATS.items())}
TEXT_FORMATS = frozenset({"xyz", "pts", "csv", "cass", "gsi", "obj", "dxf", "md", "asc", "toml"})
_MAGIC = (
    (b"LASF", "LAS/LAZ", {"las", "laz"}),
    (b"ASTM-E57", "E57", {"e57"}),
    (b"ply", "PLY", {"ply"}),
    (b"%PDF-", "PDF", {"pdf"}),
    (b"PK\x03\x04", "zip archive", {"zip"}),
    (b"II*\x00", "TIFF", {"tif"}),
    (b"MM\x00*", "TIFF", {"tif"}),
    (b"II+\x00", "BigTIFF", {"tif"}),
    (b"MM\x00+", "BigTIFF", {"tif"}),
)
#: the header keys an ESRI ASCII grid starts with
_ASC_KEYS = (b"ncols", b"nrows", b"xllcorner", b"yllcorner", b"xllcenter", b"yllcenter")


class UploadRefused(ValueError):
    """A file that cannot be taken; the message names it and says why."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Stored:
    """A file kept under the uploads directory."""

    client_name: str  # display only
    fmt: str
    kind: str
    sha256: str
    size: int
    stored: str  # relative path, made here
    archive: str | None = None


def display_name(name: str) -> str:
    """The client's name as text to show: its last component, printable, short."""
    base = PurePosixPath(name.replace("\\", "/")).name or "unnamed"
    clean = "".join(c if c.isprintable() else "?" for c in base)
    return clean[:200]


def claimed_format(name: str) -> tuple[str, str]:
    """(format, kind) that the client's name claims, or refused."""
    shown = display_name(name)
    ext = PurePosixPath(shown).suffix.lower()
    if ext == ".zip":
        return "zip", "archive"
    if ext not in FORMATS:
        known = ", ".join(sorted({*FORMATS, ".zip"}))
        raise UploadRefused(
            f"{shown}: unknown file type {ext or '(no extension)'!r}; send one of {known}"
        )
    return FORMATS[ext]


def sniff(head: bytes, name: str, size: int) -> tuple[str, str]:
    """(format, kind) of a file from its first bytes, checked against the
    format its name claims."""
    fmt, kind = claimed_format(name)
    shown = display_name(name)
    for magic, what, fmts in _MAGIC:
        if head.startswith(magic):
            if fmt not in fmts:
                raise UploadRefused(
                    f"{shown}: the name says {fmt.upper()} but the bytes are a {what} file; "
                    "rename it to what it is"
                )
            return fmt, kind
    if fmt in {"las", "laz", "e57", "ply", "pdf", "zip", "tif"}:
        raise UploadRefused(
            f"{shown}: the name says {fmt.upper()} but the bytes do not start like one "
            "(a truncated or mislabelled file?)"
        )
    if fmt == "pcd":
        if head.startswith((b"# .PCD", b"VERSION")):
            return fmt, kind
        raise UploadRefused(f"{shown}: the name says PCD but the bytes have no PCD header")
    if fmt == "stl":
        ascii_stl = head.startswith(b"solid") and b"\0" not in head
        n = int.from_bytes(head[80:84], "little") if len(head) >= 84 else -1
        if ascii_stl or size == 84 + 50 * n:
            return fmt, kind
        raise UploadRefused(f"{shown}: the name says STL but the bytes are not an STL mesh")
    if fmt == "asc" and not (b"\0" in head or head.lstrip().lower().startswith(_ASC_KEYS)):
        raise UploadRefused(
            f"{shown}: the name says an ESRI ASCII grid but the bytes do not start with its "
            "header (ncols, nrows, xllcorner ...)"
        )
    if fmt in TEXT_FORMATS:
        if b"\0" in head or not head.strip():
            raise UploadRefused(
                f"{shown}: the name says a text format ({fmt}) but the bytes are "
                + ("empty" if not head.strip() else "binary")
            )
        return fmt, kind
    raise AssertionError(fmt)


class Incoming:
    """A file being received: bytes appended, hashed and counted against a
    limit; then sniffed and moved into the store."""

    def __init__(self, root: Path, name: str, limit: int) -> None:
        claimed_format(name)  # refuse an unknown type before any byte
        self.root = root
        self.name = name
        self.limit = limit
        (root / "incoming").mkdir(parents=True, exist_ok=True)
        self.path = root / "incoming" / f"{secrets.token_hex(16)}.part"
        self._f = self.path.open("xb")
        self._h = hashlib.sha256()
        self.size = 0
        self.head = b""

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            self.discard()
            raise UploadRefused(
                f"{display_name(self.name)}: larger than the {self.limit / 1e6:,.0f} MB "
                "allowed for this upload",
                413,
            )
        if len(self.head) < 4096:
            self.head += data[: 4096 - len(self.head)]
        self._h.update(data)
        self._f.write(data)

    def discard(self) -> None:
        if not self._f.closed:
            self._f.close()
        self.path.unlink(missing_ok=True)

    def finish(self, budget: Budget) -> list[Stored]:
        """Close, sniff and store (unpacking an archive)."""
        self._f.close()
        try:
            fmt, kind = sniff(self.head, self.name, self.size)
            if fmt == "zip":
                return unpack_zip(self.root, self.path, display_name(self.name), budget)
            budget.take(self.size, display_name(self.name))
            return [store_file(self.root, self.path, self.name, fmt, kind, self._h.hexdigest())]
        finally:
            self.path.unlink(missing_ok=True)


@dataclass
class Budget:
    """What is left of the survey's size limit, and the zip bounds."""

    left: int
    zip_max_files: int
    zip_max_ratio: float

    def take(self, n: int, name: str) -> None:
        self.left -= n
        if self.left < 0:
            raise UploadRefused(f"{name}: the survey is larger than allowed for your role", 413)


def store_file(
    root: Path, src: Path, name: str, fmt: str, kind: str, sha: str, archive: str | None = None
) -> Stored:
    """Move ``src`` to its place by content (kept if already there)."""
    rel = f"blobs/{sha[:2]}/{sha}{STORED_EXT[fmt]}"
    dest = root / rel
    size = src.stat().st_size
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{secrets.token_hex(8)}.tmp")
        shutil.move(src, tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(dest)
    else:  # the same bytes are kept already: the copy goes (a tus upload's data file)
        src.unlink(missing_ok=True)
    return Stored(display_name(name), fmt, kind, sha, size, rel, archive)


def _entries(zf: zipfile.ZipFile, archive: str, budget: Budget) -> Iterator[zipfile.ZipInfo]:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if not infos:
        raise UploadRefused(f"{archive}: the archive holds no file")
    if len(infos) > budget.zip_max_files:
        raise UploadRefused(
            f"{archive}: {len(infos)} files in the archive; at most {budget.zip_max_files} "
            "are unpacked: send fewer files per archive"
        )
    for info in infos:
        if info.flag_bits & 0x1:
            raise UploadRefused(f"{archive}: {display_name(info.filename)} is encrypted")
        yield info


def unpack_zip(root: Path, path: Path, archive: str, budget: Budget) -> list[Stored]:
    """Unpack every file of a zip archive into the store, within bounds.
    The sizes in the archive's directory are not trusted: every entry is
    counted as it is inflated."""
    out: list[Stored] = []
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise UploadRefused(f"{archive}: not a readable zip archive ({exc})") from None
    with zf:
        for info in _entries(zf, archive, budget):
            shown = display_name(info.filename)
            inc = Incoming(root, shown, budget.left) if _known(shown) else None
            if inc is None:
                raise UploadRefused(f"{archive}: {shown}: not a survey file type; {_types()}")
            max_ratio = budget.zip_max_ratio * max(info.compress_size, 1)
            try:
                with zf.open(info) as f:
                    while chunk := f.read(CHUNK):
                        if inc.size + len(chunk) > max_ratio:
                            raise UploadRefused(
                                f"{archive}: {shown} inflates more than "
                                f"{budget.zip_max_ratio:g} times its packed size (a zip bomb?)"
                            )
                        inc.write(chunk)
                if inc.head.startswith(b"PK\x03\x04"):
                    raise UploadRefused(f"{archive}: {shown}: archives inside archives are refused")
                inc._f.close()
                fmt, kind = sniff(inc.head, shown, inc.size)
                budget.take(inc.size, f"{archive}: {shown}")
                out.append(
                    store_file(root, inc.path, shown, fmt, kind, inc._h.hexdigest(), archive)
                )
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                raise UploadRefused(f"{archive}: {shown}: cannot be unpacked ({exc})") from None
            finally:
                inc.discard()
    return out


def _known(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in FORMATS


def _types() -> str:
    return "send one of " + ", ".join(sorted(FORMATS))


def take_file(root: Path, path: Path, name: str, budget: Budget) -> list[Stored]:
    """Hash, sniff and store a file already on disk (a finished tus
    upload); it is moved, or removed once an archive is unpacked."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        head = f.read(4096)
        f.seek(0)
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    fmt, kind = sniff(head, name, size)
    if fmt == "zip":
        try:
            return unpack_zip(root, path, display_name(name), budget)
        finally:
            path.unlink(missing_ok=True)
    budget.take(size, display_name(name))
    return [store_file(root, path, name, fmt, kind, h.hexdigest())]


def sweep_tus(root: Path, now_s: float) -> int:
    """Remove unfinished tus uploads past their expiry (``Upload-Expires``,
    ``uploads.tus_days_to_keep`` after creation); how many. tuspyserver's
    own ``gc_files`` reads the expiry it writes (RFC 7231) as ISO 8601 and
    fails, and sees only one directory, not one per uploader."""
    import json
    from email.utils import parsedate_to_datetime

    removed = 0
    for info in (root / "tus").glob("*/*.info"):
        try:
            expires = json.loads(info.read_text()).get("expires")
            if isinstance(expires, int | float):
                when: float | None = float(expires)
            else:
                when = parsedate_to_datetime(expires).timestamp() if expires else None
        except (OSError, ValueError, TypeError):
            continue  # being written, or not ours to judge
        if when is not None and when < now_s:
            info.with_suffix("").unlink(missing_ok=True)
            info.unlink(missing_ok=True)
            removed += 1
    return removed
