"""Verified download against a local HTTP server, and safe archive extraction (all offline)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

from afme_lib.core.errors import DownloadError
from afme_lib.data.benchmarks import DatasetEntry, ReleaseFile, resolve_dataset
from afme_lib.data.download import download_dataset, fetch_file, safe_extract, sha256_file

FILES = {
    "entity2id.txt": b"3\na\t0\nb\t1\nc\t2\n",
    "relation2id.txt": b"1\nr\t0\n",
    "train2id.txt": b"2\n0 1 0\n1 2 0\n",
    "valid2id.txt": b"1\n0 2 0\n",
    "test2id.txt": b"1\n2 0 0\n",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def toy_entry(overrides: dict[str, str | None] | None = None, extra: tuple[str, ...] = ()) -> DatasetEntry:
    """A registry entry for the files above; ``overrides`` replaces some pins."""
    overrides = overrides or {}
    files = [
        ReleaseFile(name, overrides.get(name, sha(data)), len(data) if overrides.get(name, "") is not None else None)
        for name, data in FILES.items()
    ]
    files += [ReleaseFile(name, "0" * 64, 1) for name in extra]
    return DatasetEntry(
        name="TOY",
        aliases=("toy-kg",),
        folder="Toy",
        files=tuple(files),
        counts={"entities": 3, "relations": 1, "train": 2, "valid": 1, "test": 1},
        description="toy benchmark for tests",
    )


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self):
        self.requests.append(self.path)
        if self.path.startswith("/slow/"):
            time.sleep(1.5)
        if self.path.startswith("/short/"):  # promises 100 bytes, sends 10, hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return None
        return super().do_GET()

    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the timeout test hangs up on a slow handler: a broken pipe there is expected


@pytest.fixture
def server(tmp_path):
    """Serves ``tmp_path/srv`` on 127.0.0.1; yields (base_url, served_root, request_log)."""
    root = tmp_path / "srv"
    (root / "Toy").mkdir(parents=True)
    for name, data in FILES.items():
        (root / "Toy" / name).write_bytes(data)
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    httpd = _QuietServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_download_verifies_and_places_files(server, tmp_path):
    base, _, requests = server
    reg = {"TOY": toy_entry()}
    folder = download_dataset("toy-kg", dest_root=tmp_path / "data", base_url=base, registry=reg, progress=False)
    assert folder == tmp_path / "data" / "Toy"
    for name, data in FILES.items():
        assert (folder / name).read_bytes() == data
    assert sorted(requests) == sorted(f"/Toy/{n}" for n in FILES)
    assert leftovers(folder) == []
    assert resolve_dataset("TOY", data_dir=tmp_path / "data", registry=reg) == folder


def test_rerun_skips_verified_files_and_refetches_corrupt_ones(server, tmp_path, capsys):
    base, _, requests = server
    reg = {"TOY": toy_entry()}
    folder = download_dataset("TOY", tmp_path, base_url=base, registry=reg, progress=False)
    requests.clear()
    download_dataset("TOY", tmp_path, base_url=base, registry=reg, progress=False)
    assert requests == []  # nothing fetched: every file was already there with its pinned hash
    (folder / "train2id.txt").write_bytes(b"2\n0 1 0\n1 2 9\n")  # same size, wrong content
    download_dataset("TOY", tmp_path, base_url=base, registry=reg, progress=True)
    assert requests == ["/Toy/train2id.txt"]
    err = capsys.readouterr().err
    assert f"TOY: fetching {base}/Toy/train2id.txt" in err
    assert f"TOY: {folder} ready: 5 files verified, 0 unverified, 4 already present" in err
    assert (folder / "train2id.txt").read_bytes() == FILES["train2id.txt"]


def test_hash_mismatch_raises_with_both_hashes_and_keeps_nothing(server, tmp_path):
    base, _, _ = server
    wrong = "ab" * 32
    reg = {"TOY": toy_entry({"train2id.txt": wrong})}
    with pytest.raises(DownloadError) as err:
        download_dataset("TOY", tmp_path, base_url=base, registry=reg, progress=False)
    msg = str(err.value)
    assert "train2id.txt" in msg
    assert f"expected {wrong}" in msg
    assert f"got {sha(FILES['train2id.txt'])}" in msg
    folder = tmp_path / "Toy"
    assert not (folder / "train2id.txt").exists()
    assert leftovers(folder) == []
    # the files before it in the list were verified and kept
    assert (folder / "entity2id.txt").read_bytes() == FILES["entity2id.txt"]


def test_http_404_names_the_url(server, tmp_path):
    base, _, _ = server
    reg = {"TOY": toy_entry(extra=("missing.txt",))}
    with pytest.raises(DownloadError) as err:
        download_dataset("TOY", tmp_path, base_url=base, registry=reg, progress=False)
    assert str(err.value) == f"cannot download {base}/Toy/missing.txt: HTTP 404 File not found"
    assert leftovers(tmp_path / "Toy") == []


def test_unreachable_host_names_the_url(tmp_path):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/Toy/entity2id.txt"
    with pytest.raises(DownloadError, match=rf"^cannot download {url}: .*refused"):
        fetch_file(url, tmp_path / "entity2id.txt", progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_timeout_raises_download_error(server, tmp_path):
    base, root, _ = server
    (root / "slow").mkdir()
    (root / "slow" / "f.txt").write_bytes(b"x")
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"cannot download .*/slow/f\.txt: .*timed out"):
        fetch_file(f"{base}/slow/f.txt", tmp_path / "out" / "f.txt", timeout=0.3, progress=False)
    assert time.monotonic() - start < 1.4
    assert list((tmp_path / "out").iterdir()) == []


def test_truncated_body_is_not_kept_even_unpinned(server, tmp_path):
    base, _, _ = server
    with pytest.raises(DownloadError, match=r"cannot download .*/short/f\.txt: truncated, got 10 of 100 bytes$"):
        fetch_file(f"{base}/short/f.txt", tmp_path / "out" / "f.txt", sha256=None, progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_unpinned_refused_without_flag_then_prints_hashes(server, tmp_path, capsys):
    base, _, requests = server
    reg = {"TOY": toy_entry({"test2id.txt": None})}
    with pytest.raises(
        DownloadError, match=r"TOY has no pinned sha256 .*allow_unpinned=True \(CLI: --allow-unpinned\)"
    ):
        download_dataset("TOY", tmp_path, base_url=base, registry=reg, progress=False)
    assert requests == [] and not (tmp_path / "Toy").exists()

    folder = download_dataset("TOY", tmp_path, base_url=base, registry=reg, allow_unpinned=True, progress=False)
    out = capsys.readouterr().out
    data = FILES["test2id.txt"]
    assert f"Toy test2id.txt {sha(data)} {len(data)}" in out.splitlines()
    assert "entity2id.txt" not in out  # pinned files were verified, nothing to print for them
    assert (folder / "test2id.txt").read_bytes() == data


def test_base_url_and_destination_from_environment(server, tmp_path, monkeypatch):
    base, _, requests = server
    monkeypatch.setenv("AFME_DATASET_BASE_URL", base + "/")
    monkeypatch.delenv("AFME_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    reg = {"TOY": toy_entry()}
    folder = download_dataset("TOY", registry=reg, progress=False)
    assert folder == tmp_path / "xdg" / "afme-workbench" / "datasets" / "Toy"
    assert len(requests) == len(FILES)
    assert resolve_dataset("toy", registry=reg) == folder  # the cache is searched by default

    monkeypatch.setenv("AFME_DATA_DIR", str(tmp_path / "mine"))
    assert download_dataset("TOY", registry=reg, progress=False) == tmp_path / "mine" / "Toy"


def test_sha256_file_matches_hashlib(tmp_path):
    data = os.urandom(3 * 1024 + 7)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f", chunk_size=1000) == sha(data)


# --- safe_extract -----------------------------------------------------------------------------


def make_zip(path: Path, members: list[tuple[str, bytes | None, str | None]]) -> Path:
    """members: (name, data, symlink_target); a symlink member carries its target as data."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, link in members:
            info = zipfile.ZipInfo(name)
            if link is not None:
                info.create_system = 3
                info.external_attr = 0o120777 << 16
                zf.writestr(info, link)
            else:
                zf.writestr(info, data)
    return path


def make_tar(path: Path, members: list[tuple[str, bytes | None, str | None, str]]) -> Path:
    """members: (name, data, link_target, kind) with kind 'file', 'sym' or 'hard'."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data, link, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = link
                tf.addfile(info)
    return path


def test_safe_extract_good_archives(tmp_path):
    z = make_zip(
        tmp_path / "good.zip",
        [("feats/a.txt", b"A", None), ("feats/sub/b.txt", b"B", None), ("feats/link", None, "sub/b.txt")],
    )
    got = safe_extract(z, tmp_path / "z")
    assert sorted(p.relative_to(tmp_path / "z").as_posix() for p in got) == [
        "feats/a.txt",
        "feats/link",
        "feats/sub/b.txt",
    ]
    assert (tmp_path / "z/feats/link").is_symlink() and (tmp_path / "z/feats/link").read_bytes() == b"B"

    t = make_tar(
        tmp_path / "good.tar.gz",
        [("d/x.txt", b"X", None, "file"), ("d/y.txt", None, "d/x.txt", "hard"), ("d/s", None, "x.txt", "sym")],
    )
    got = safe_extract(t, tmp_path / "t")
    assert len(got) == 3
    assert (tmp_path / "t/d/y.txt").read_bytes() == b"X" and not (tmp_path / "t/d/y.txt").is_symlink()
    assert (tmp_path / "t/d/s").read_bytes() == b"X"


@pytest.mark.parametrize(
    "member, why",
    [
        (("../evil.txt", b"E", None), "'..' in path"),
        (("ok/../../evil.txt", b"E", None), "'..' in path"),
        (("/tmp/evil.txt", b"E", None), "absolute path"),
        (("esc", None, "../../outside"), "points outside"),
        (("esc", None, "/etc/passwd"), "absolute path"),
    ],
)
def test_safe_extract_zip_refuses_escapes(tmp_path, member, why):
    z = make_zip(tmp_path / "bad.zip", [("fine.txt", b"F", None), member])
    dest = tmp_path / "out"
    with pytest.raises(DownloadError, match=rf"refusing member {member[0]!r}: .*{why}"):
        safe_extract(z, dest)
    assert list(dest.iterdir()) == []  # checked before anything was written
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize(
    "member, why",
    [
        (("../evil.txt", b"E", None, "file"), "'..' in path"),
        (("/tmp/evil.txt", b"E", None, "file"), "absolute path"),
        (("esc", None, "../../outside", "sym"), "symlink to '../../outside' points outside"),
        (("esc", None, "/etc/passwd", "sym"), "symlink to absolute path"),
        (("esc", None, "../outside.txt", "hard"), "hard link to '../outside.txt' points outside"),
        (("esc", None, "/etc/passwd", "hard"), "hard link to absolute path"),
    ],
)
def test_safe_extract_tar_refuses_escapes(tmp_path, member, why):
    t = make_tar(tmp_path / "bad.tar.gz", [("fine.txt", b"F", None, "file"), member])
    dest = tmp_path / "out"
    with pytest.raises(DownloadError, match=rf"refusing member {member[0]!r}: .*{why}"):
        safe_extract(t, dest)
    assert list(dest.iterdir()) == []


def test_safe_extract_refuses_write_through_symlink_chain(tmp_path):
    # Each link on its own looks inside, but together they reach dest's parent:
    # 'a' -> 'b/b/..' is dest/b lexically; then 'b' -> '.' makes a = dest/.. (outside).
    # 'a/evil.txt' must not be written there.
    t = make_tar(
        tmp_path / "chain.tar",
        [("a", None, "b/b/..", "sym"), ("b", None, ".", "sym"), ("a/evil.txt", b"E", None, "file")],
    )
    dest = tmp_path / "out"
    with pytest.raises(DownloadError, match="refusing member 'a/evil.txt'"):
        safe_extract(t, dest)
    assert not (tmp_path / "evil.txt").exists()
    # Without a write through it, the escaping link is still found and removed at the end.
    t = make_tar(tmp_path / "chain2.tar", [("a", None, "b/b/..", "sym"), ("b", None, ".", "sym")])
    with pytest.raises(DownloadError, match="refusing member 'a': symlink resolves outside the destination"):
        safe_extract(t, tmp_path / "out2")
    assert not (tmp_path / "out2" / "a").is_symlink()


def test_safe_extract_rejects_non_archives(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"not an archive")
    with pytest.raises(DownloadError, match="not a zip or tar archive"):
        safe_extract(tmp_path / "f.bin", tmp_path / "out")
