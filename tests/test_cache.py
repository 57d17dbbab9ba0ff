"""Cache: real downloads from a loopback HTTP server, hash checks, locks, seed, verify."""

from __future__ import annotations

import hashlib
import http.server
import multiprocessing
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from pytest_crbench.datasets import cache
from pytest_crbench.errors import CRBenchDataError, CRBenchMissingDataError
from pytest_crbench.datasets.catalog import RegistryEntry

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hst"
PAYLOAD = os.urandom(300_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    counts: dict = {}
    lock = threading.Lock()

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802
        with self.lock:
            n = self.counts.get(self.path, 0) + 1
            self.counts[self.path] = n
        kind = self.path.split("/")[1]
        if kind == "flaky" and n == 1:
            self.send_error(500, "try again")
            return
        if kind == "missing":
            self.send_error(404)
            return
        if kind == "slow":
            time.sleep(0.3)  # several workers overlap while one downloads
        body = PAYLOAD
        if kind == "bad":
            body = PAYLOAD[:-10] + b"0123456789"
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if kind == "trunc-nolen":
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if kind == "trunc":
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    _Handler.protocol_version = "HTTP/1.0"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.counts
    httpd.shutdown()
    httpd.server_close()


def _reg(url, name="x.fits", digest=DIGEST):
    return {name: RegistryEntry(name, digest, url)}


class Progress:
    def __init__(self):
        self.total, self.updates, self.closed = None, 0, False

    def update(self, n):
        self.updates += n

    def reset(self):
        self.updates = 0

    def close(self):
        self.closed = True


def test_download_success_with_progress(server, tmp_path, capsys):
    base, counts = server
    bar = Progress()
    out = cache.fetch(["x.fits"], data_dir=tmp_path, offline=False, progress=bar,
                      registry=_reg(f"{base}/ok/a"))
    assert out["x.fits"].read_bytes() == PAYLOAD
    assert bar.total == len(PAYLOAD) and bar.updates == len(PAYLOAD) and bar.closed
    # the default progress bar (tqdm) writes to stderr
    cache.fetch(["y.fits"], data_dir=tmp_path, offline=False, progress=True,
                registry=_reg(f"{base}/ok/b", name="y.fits"))
    assert "B" in capsys.readouterr().err
    # cached: no new request
    before = counts[f"/ok/a"]
    cache.fetch(["x.fits"], data_dir=tmp_path, offline=False, registry=_reg(f"{base}/ok/a"))
    assert counts["/ok/a"] == before == 1
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*.part"))


def test_500_then_success_on_retry(server, tmp_path):
    base, counts = server
    out = cache.fetch(["x.fits"], data_dir=tmp_path, offline=False, progress=False,
                      registry=_reg(f"{base}/flaky/1"))
    assert out["x.fits"].read_bytes() == PAYLOAD
    assert counts["/flaky/1"] == 2


def test_404_is_a_clear_error(server, tmp_path):
    base, _ = server
    with pytest.raises(CRBenchMissingDataError, match="404.*seed DIR|seed DIR"):
        cache.fetch(["x.fits"], data_dir=tmp_path, offline=False, progress=False,
                    registry=_reg(f"{base}/missing/1"))
    assert not (tmp_path / "x.fits").exists()


@pytest.mark.parametrize("kind", ["trunc-nolen", "bad"])
def test_truncated_or_corrupted_body_hash_error_no_file(server, tmp_path, kind):
    base, counts = server
    with pytest.raises(CRBenchDataError, match="sha256 mismatch.*not kept"):
        cache.fetch(["x.fits"], data_dir=tmp_path, offline=False, progress=False,
                    registry=_reg(f"{base}/{kind}/1"), retries=1)
    assert counts[f"/{kind}/1"] == 2  # retried once
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []
    assert not list(tmp_path.glob(".*.part"))


def test_truncated_body_with_content_length(server, tmp_path):
    base, _ = server
    with pytest.raises((CRBenchMissingDataError, CRBenchDataError)):
        cache.fetch(["x.fits"], data_dir=tmp_path, offline=False, progress=False,
                    registry=_reg(f"{base}/trunc/1"), retries=0)
    assert not (tmp_path / "x.fits").exists()
    assert not list(tmp_path.glob(".*.part"))


def test_server_that_never_answers_times_out(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)  # accepts connections (kernel backlog) but never answers
    try:
        port = sock.getsockname()[1]
        t0 = time.perf_counter()
        with pytest.raises(CRBenchMissingDataError, match="no answer .* within 1 s"):
            cache.fetch(["x.fits"], data_dir=tmp_path, offline=False, progress=False,
                        registry=_reg(f"http://127.0.0.1:{port}/x"), timeout=1.0)
        assert time.perf_counter() - t0 < 10
    finally:
        sock.close()
    assert not (tmp_path / "x.fits").exists()


def test_offline_never_touches_network_and_lists_files(server, tmp_path):
    base, counts = server
    reg = {**_reg(f"{base}/ok/off1", name="a.fits"), **_reg(f"{base}/ok/off2", name="b.fits")}
    with pytest.raises(CRBenchMissingDataError) as info:
        cache.fetch(["a.fits", "b.fits"], data_dir=tmp_path, offline=True, registry=reg,
                    dataset="mydata")
    msg = str(info.value)
    assert "a.fits" in msg and "b.fits" in msg
    assert "crbench data fetch mydata" in msg and "crbench data seed DIR" in msg
    assert "/ok/off1" not in counts and "/ok/off2" not in counts


def test_corrupted_cached_file_is_replaced_or_refused(server, tmp_path):
    base, counts = server
    (tmp_path / "x.fits").write_bytes(b"garbage")
    with pytest.raises(CRBenchMissingDataError):
        cache.fetch(["x.fits"], data_dir=tmp_path, offline=True, registry=_reg(f"{base}/ok/c"))
    assert not (tmp_path / "x.fits").exists()  # never left in the cache
    (tmp_path / "x.fits").write_bytes(b"garbage")
    out = cache.fetch(["x.fits"], data_dir=tmp_path, offline=False, progress=False,
                      registry=_reg(f"{base}/ok/c"))
    assert out["x.fits"].read_bytes() == PAYLOAD


def _worker(args):
    url, directory = args
    out = cache.fetch(["x.fits"], data_dir=Path(directory), offline=False, progress=False,
                      registry=_reg(url))
    return out["x.fits"].read_bytes() == PAYLOAD


def test_parallel_workers_download_once(server, tmp_path):
    base, counts = server
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        ok = pool.map(_worker, [(f"{base}/slow/par", str(tmp_path))] * 4)
    assert all(ok)
    assert counts["/slow/par"] == 1


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(tmp_path / "env"))
    assert cache.data_dir(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    assert cache.data_dir() == (tmp_path / "env").resolve()
    monkeypatch.delenv("CRBENCH_DATA_DIR")
    assert "pytest-crbench" in str(cache.data_dir())
    (tmp_path / "pyproject.toml").write_text('[tool.crbench]\ndata_dir = "cachehere"\n')
    (tmp_path / "sub").mkdir()
    assert cache.config_data_dir(tmp_path / "sub") == str((tmp_path / "cachehere").resolve())


def test_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, pytest_crbench.datasets.cache; print('pooch' in sys.modules, 'requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------ seed / verify


needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")


@needs_shared
def test_seed_from_shared_and_verify(tmp_path):
    t0 = time.perf_counter()
    report = cache.seed(SHARED, data_dir=tmp_path)
    assert report.ok and len(report.copied) == 17 and not report.absent
    assert set(report.unregistered) == {"PROVENANCE.md", "SHA256SUMS"}
    assert time.perf_counter() - t0 < 30
    again = cache.seed(SHARED, data_dir=tmp_path)
    assert len(again.present) == 17 and not again.copied
    v = cache.verify(data_dir=tmp_path)
    assert v.ok and len(v.good) == 17
    # corrupt one cached file: verify deletes it and reports it
    victim = tmp_path / "o56502020_raw.fits"
    data = bytearray(victim.read_bytes())
    data[5000] ^= 0xFF
    victim.write_bytes(bytes(data))
    v = cache.verify(data_dir=tmp_path)
    assert list(v.removed) == ["o56502020_raw.fits"] and not victim.exists()
    with pytest.raises(CRBenchMissingDataError, match="o56502020_raw.fits"):
        cache.fetch(["o56502020_raw.fits"], data_dir=tmp_path, offline=True)


@needs_shared
def test_seed_refuses_a_bad_copy(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = (SHARED / "o56503010_raw.fits").read_bytes()
    (src / "o56503010_raw.fits").write_bytes(good[: len(good) // 2])  # truncated copy
    dest = tmp_path / "cache"
    report = cache.seed(src, data_dir=dest)
    assert list(report.bad) == ["o56503010_raw.fits"]
    assert "sha256 mismatch" in report.bad["o56503010_raw.fits"]
    assert not (dest / "o56503010_raw.fits").exists()
    assert not list(dest.glob(".*.part"))
