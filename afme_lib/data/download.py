"""Verified download of registered benchmarks, and safe extraction of archives.

``download_dataset`` fetches each release file of a registered benchmark (see
:mod:`afme_lib.data.benchmarks`) with ``urllib``, streaming it into a temporary file beside its
destination while hashing it, and renames it into place (``os.replace``, atomic on one file system)
only once its sha256 matches the pin. A folder therefore never holds a truncated or unverified
file under a release name, and an interrupted download resumes by skipping the files already
present with the right hash.

DB15K is not pinned (its sha256 are unknown): downloading it refuses unless
``allow_unpinned=True`` (CLI ``--allow-unpinned``), and then prints ``folder file sha256 size``
lines for the files it got, so they can be pinned in the registry.

``safe_extract`` unpacks .zip / .tar / .tar.gz archives (feature releases come that way) and
refuses any member that would land outside the destination.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath

from afme_lib import __version__
from afme_lib.core import atomic, console
from afme_lib.core.errors import DownloadError
from afme_lib.data.benchmarks import (
    DATA_DIR_ENV,
    DatasetEntry,
    ReleaseFile,
    cache_dir,
    get_entry,
    resolve_base_url,
)

CHUNK = 1 << 20


def sha256_file(path: str | Path, chunk_size: int = CHUNK) -> str:
    """Hex sha256 of a file, read in chunks (memory stays flat for large files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def default_download_root() -> Path:
    """Where downloads go by default: ``$AFME_DATA_DIR`` when set, else the cache folder.

    Both are searched by :func:`~afme_lib.data.benchmarks.resolve_dataset`, so a default
    download is found without further configuration.
    """
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else cache_dir()


def _log(message: str, enabled: bool) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def fetch_file(
    url: str,
    target: str | Path,
    sha256: str | None = None,
    size: int | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> str:
    """Download ``url`` to ``target`` and return the sha256 of what was received.

    The body is streamed into a temporary file in ``target``'s folder and hashed on the way;
    when ``sha256`` is given the file is moved to ``target`` only if it matches, otherwise the
    temporary file is removed and :class:`DownloadError` names the file and both hashes.
    Network and HTTP failures raise :class:`DownloadError` with the URL and the reason.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": f"afme-workbench/{__version__}"})
    # The temporary file is renamed onto target only when the block ends normally (atomic.py).
    with atomic.replacing(target, suffix=".part") as tmp:
        digest = hashlib.sha256()
        received = 0
        try:
            with open(tmp, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else size
                with _progress_bar(total, target.name, progress) as bar:
                    while block := resp.read(CHUNK):
                        out.write(block)
                        digest.update(block)
                        received += len(block)
                        bar.update(len(block))
                if length and length.isdigit() and received != int(length):
                    # A connection closed early can look like a clean end of the body.
                    raise DownloadError(f"cannot download {url}: truncated, got {received} of {length} bytes")
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as exc:
            raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            raise DownloadError(f"cannot download {url}: {exc.reason}") from exc
        except TimeoutError as exc:
            raise DownloadError(f"cannot download {url}: timed out after {timeout} s") from exc
        except (OSError, http.client.HTTPException) as exc:  # reset or truncated body, disk full, ...
            raise DownloadError(f"cannot download {url}: {exc!r}") from exc
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256.lower():
            size_note = f" (expected {size} bytes, got {received})" if size is not None and size != received else ""
            raise DownloadError(
                f"sha256 mismatch for {target.name} from {url}: expected {sha256.lower()}, "
                f"got {actual}{size_note}; the file was not kept"
            )
    return actual


def _progress_bar(total: int | None, label: str, enabled: bool):
    return console.progress_bar(
        None, enabled, total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, leave=False
    )


def download_dataset(
    name: str,
    dest_root: str | Path | None = None,
    base_url: str | None = None,
    allow_unpinned: bool = False,
    progress: bool = True,
    *,
    timeout: float = 60.0,
    registry: Mapping[str, DatasetEntry] | None = None,
) -> Path:
    """Download a registered benchmark into ``<dest_root>/<folder>/`` and return that folder.

    ``dest_root`` defaults to :func:`default_download_root`; ``base_url`` to
    ``$AFME_DATASET_BASE_URL`` or the pinned GitHub release; ``timeout`` (seconds) applies to
    each connection and read. Each file is verified against its pinned sha256 before it is moved
    into place; files already present with the right hash are skipped, so a re-run resumes an
    interrupted download (a present file with a wrong hash is fetched again).

    An entry without pins (DB15K) raises :class:`DownloadError` unless ``allow_unpinned`` is
    true; then the files are kept unverified and their computed ``folder file sha256 size`` lines
    are printed to stdout for pinning. ``registry`` replaces the built-in registry (tests, mirrors).
    """
    entry = get_entry(name, registry)
    if not entry.pinned and not allow_unpinned:
        raise DownloadError(
            f"{entry.name} has no pinned sha256 for its files, so the download cannot be verified; "
            "pass allow_unpinned=True (CLI: --allow-unpinned) to download it anyway and print the "
            "hashes to pin"
        )
    root = Path(dest_root).expanduser() if dest_root is not None else default_download_root()
    folder = root / entry.folder
    folder.mkdir(parents=True, exist_ok=True)
    computed: list[tuple[ReleaseFile, str, int]] = []
    skipped = 0
    for release_file in entry.files:
        target = folder / release_file.name
        actual = _present_hash(target, release_file)
        if actual is not None:
            skipped += 1
        else:
            url = entry.url(release_file.name, base_url)
            _log(f"{entry.name}: fetching {url}", progress)
            actual = fetch_file(url, target, release_file.sha256, release_file.size, timeout, progress)
        computed.append((release_file, actual, target.stat().st_size))
    unpinned = [(f, h, n) for f, h, n in computed if f.sha256 is None]
    if unpinned:
        print(f"# {entry.name}: unverified files; pin these in afme_lib/data/benchmarks.py", flush=True)
        for release_file, digest, nbytes in unpinned:
            print(f"{entry.folder} {release_file.name} {digest} {nbytes}", flush=True)
    verified = len(computed) - len(unpinned)
    _log(
        f"{entry.name}: {folder} ready: {verified} files verified, {len(unpinned)} unverified, "
        f"{skipped} already present (source {resolve_base_url(base_url)})",
        progress,
    )
    return folder


def _present_hash(target: Path, release_file: ReleaseFile) -> str | None:
    """Hash of ``target`` if it can be kept as is (right hash, or present and unpinned), else None."""
    if not target.is_file():
        return None
    if release_file.size is not None and target.stat().st_size != release_file.size:
        return None  # cheap reject before hashing
    actual = sha256_file(target)
    if release_file.sha256 is None or actual == release_file.sha256.lower():
        return actual
    return None


# ---------------------------------------------------------------------------------------------
# Archives


def _inside(root: Path, path: str | Path) -> bool:
    """True when ``path``, with every symlink that exists resolved, lies in ``root`` (resolved)."""
    real = os.path.realpath(path)
    return os.path.commonpath([str(root), real]) == str(root)


def _member_parts(archive: Path, name: str) -> tuple[str, ...]:
    """Split a member name into path parts; refuse absolute names and any ``..`` component."""
    posix = name.replace("\\", "/")
    win = PureWindowsPath(name)
    if posix.startswith("/") or win.drive or win.root:
        raise DownloadError(f"{archive}: refusing member {name!r}: absolute path")
    parts = tuple(p for p in PurePosixPath(posix).parts if p not in ("", "."))
    if ".." in parts:
        raise DownloadError(f"{archive}: refusing member {name!r}: '..' in path escapes the destination")
    return parts


def _check_link(archive: Path, root: Path, name: str, parts: tuple[str, ...], link: str, kind: str) -> None:
    """Refuse a link member whose target is absolute or, resolved, lies outside ``root``.

    Symlink targets are relative to the link's folder; hard-link targets (tar) to the archive root.
    """
    if link.startswith(("/", "\\")) or PureWindowsPath(link).drive:
        raise DownloadError(f"{archive}: refusing member {name!r}: {kind} to absolute path {link!r}")
    base = root.joinpath(*parts[:-1]) if kind == "symlink" else root
    target = os.path.normpath(os.path.join(base, link.replace("\\", "/")))
    # Lexically (normpath) and with existing links resolved (realpath), the target stays inside.
    if not (os.path.commonpath([str(root), target]) == str(root) and _inside(root, target)):
        raise DownloadError(f"{archive}: refusing member {name!r}: {kind} to {link!r} points outside the destination")


def safe_extract(archive_path: str | Path, dest: str | Path) -> list[Path]:
    """Extract a .zip, .tar, .tar.gz (or other compressed tar) archive into ``dest``.

    Every member is checked before anything is written: absolute names, names with a ``..``
    component, and symlinks / hard links whose target lies outside ``dest`` raise
    :class:`DownloadError` naming the member; device files and FIFOs are refused too. While
    extracting, each write target is checked again with symlinks resolved (a link extracted
    earlier cannot redirect a later file outside), and links are re-checked at the end.
    Returns the extracted paths (files and links, not folders).
    """
    archive = Path(archive_path)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.realpath(dest))
    if zipfile.is_zipfile(archive):
        written = _extract_zip(archive, root)
    elif tarfile.is_tarfile(archive):
        written = _extract_tar(archive, root)
    else:
        raise DownloadError(f"{archive}: not a zip or tar archive")
    for path in written:  # a link can only escape through links created after it was checked
        if path.is_symlink() and not _inside(root, path):
            path.unlink()
            raise DownloadError(
                f"{archive}: refusing member {str(path.relative_to(root))!r}: symlink resolves outside the destination"
            )
    return written


def _prepare_target(archive: Path, root: Path, name: str, parts: tuple[str, ...]) -> Path:
    """Target path of a file or link member, with its folder created; checked with links resolved."""
    target = root.joinpath(*parts)
    if not _inside(root, target.parent):  # before mkdir: a link extracted earlier may redirect it
        raise DownloadError(f"{archive}: refusing member {name!r}: resolves outside the destination")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()  # replace, never write through an existing link
    return target


def _make_dir(archive: Path, root: Path, name: str, parts: tuple[str, ...]) -> None:
    target = root.joinpath(*parts)
    if not _inside(root, target):
        raise DownloadError(f"{archive}: refusing member {name!r}: resolves outside the destination")
    target.mkdir(parents=True, exist_ok=True)


def _zip_symlink_target(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):  # 3: made on Unix, mode bits are meaningful
        return zf.read(info).decode("utf-8")
    return None


def _extract_zip(archive: Path, root: Path) -> list[Path]:
    with zipfile.ZipFile(archive) as zf:
        plan = []
        for info in zf.infolist():
            parts = _member_parts(archive, info.filename)
            if not parts:
                continue
            link = _zip_symlink_target(zf, info)
            if link is not None:
                _check_link(archive, root, info.filename, parts, link, "symlink")
            plan.append((info, parts, link))
        written = []
        for info, parts, link in plan:
            if info.is_dir():
                _make_dir(archive, root, info.filename, parts)
                continue
            target = _prepare_target(archive, root, info.filename, parts)
            if link is not None:
                os.symlink(link, target)
            else:
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            written.append(target)
    return written


def _extract_tar(archive: Path, root: Path) -> list[Path]:
    with tarfile.open(archive) as tf:
        plan = []
        for member in tf.getmembers():
            parts = _member_parts(archive, member.name)
            if not parts:
                continue
            if member.issym():
                _check_link(archive, root, member.name, parts, member.linkname, "symlink")
            elif member.islnk():
                _check_link(archive, root, member.name, parts, member.linkname, "hard link")
            elif not (member.isfile() or member.isdir()):
                raise DownloadError(f"{archive}: refusing member {member.name!r}: unsupported type (device or FIFO)")
            plan.append((member, parts))
        written = []
        for member, parts in plan:
            if member.isdir():
                _make_dir(archive, root, member.name, parts)
                continue
            target = _prepare_target(archive, root, member.name, parts)
            if member.issym():
                os.symlink(member.linkname, target)
            elif member.islnk():
                # Copy rather than hard-link: the copy cannot alias anything outside ``dest``.
                source = Path(os.path.normpath(os.path.join(root, member.linkname)))
                if not source.is_file() or not _inside(root, source):
                    raise DownloadError(
                        f"{archive}: refusing member {member.name!r}: hard link target {member.linkname!r} is not an extracted file"
                    )
                shutil.copyfile(source, target)
            else:
                src = tf.extractfile(member)
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            written.append(target)
    return written
