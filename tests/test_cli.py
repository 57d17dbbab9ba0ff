"""`crbench data` command line: list, fetch, verify, seed, add."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_crbench.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hst"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path):
    monkeypatch.delenv("CRBENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("CRBENCH_USER_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)  # no pyproject.toml [tool.crbench] above


def test_list_empty_cache(tmp_path, capsys):
    assert main(["data", "list", "--data-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "stis-crsplit  [scored]  0/12 cached" in out
    assert "wfpc2-smoke  [smoke only, not scored]" in out
    assert "missing" in out and "excluded group o56502010" in out


def test_fetch_offline_missing_lists_files_and_command(tmp_path, capsys):
    rc = main(["data", "fetch", "hrc-smoke", "--offline", "--data-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "j6gp01lzq_raw.fits" in err and "j6gp01mkq_raw.fits" in err
    assert "crbench data fetch hrc-smoke" in err and "crbench data seed DIR" in err


def test_unknown_name_is_an_error(tmp_path, capsys):
    assert main(["data", "fetch", "nonesuch", "--offline", "--data-dir", str(tmp_path)]) == 1
    assert "neither a dataset" in capsys.readouterr().err


@needs_shared
def test_seed_list_verify_fetch(tmp_path, capsys):
    cdir = str(tmp_path / "c")
    assert main(["data", "seed", str(SHARED), "--data-dir", cdir]) == 0
    out = capsys.readouterr().out
    assert "17 copied" in out and "0 refused" in out
    assert main(["data", "list", "--data-dir", cdir]) == 0
    assert "12/12 cached" in capsys.readouterr().out
    assert main(["data", "fetch", "stis-crsplit", "--offline", "--data-dir", cdir]) == 0
    assert "12 file(s)" in capsys.readouterr().out
    victim = Path(cdir) / "j6gp01lzq_raw.fits"
    victim.write_bytes(victim.read_bytes()[:1000])
    assert main(["data", "verify", "--data-dir", cdir]) == 1
    out = capsys.readouterr().out
    assert "CORRUPT  j6gp01lzq_raw.fits" in out and not victim.exists()


@needs_shared
def test_data_dir_from_pyproject(tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text('[tool.crbench]\ndata_dir = "mycache"\n')
    assert main(["data", "seed", str(SHARED), "hrc-smoke"]) == 0
    assert (tmp_path / "mycache" / "j6gp01lzq_raw.fits").is_file()
    assert not (tmp_path / "mycache" / "o56502020_raw.fits").exists()


def test_add_own_files_as_a_dataset(tmp_path, capsys):
    from pytest_crbench.datasets.fits import write_exposures
    from pytest_crbench.science.exposures import Exposure
    from pytest_crbench.datasets.real import load_real_dataset

    rng = np.random.default_rng(0)
    files = []
    for i in range(2):
        exp = Exposure(f"own{i}", rng.normal(100, 5, (32, 32)), np.zeros((32, 32)), 300.0,
                       instrument="ACS", detector="WFC", date_obs="2020-01-0%d" % (i + 1))
        files.append(str(write_exposures(tmp_path / f"own{i}_flc.fits", [exp])))
    cdir = tmp_path / "c"
    rc = main(["data", "add", *files, "--group", "team1", "--kind", "pointing",
               "--loader", "flt", "--dataset", "team-data", "--data-dir", str(cdir)])
    assert rc == 0, capsys.readouterr().err
    reg = (cdir / "user_registry.txt").read_text()
    assert "own0_flc.fits" in reg and "file://" in reg
    ds = load_real_dataset("team-data", data_dir=cdir, offline=True)
    assert [g.name for g in ds.groups] == ["team1"] and len(ds.groups[0].exposures) == 2
    assert ds.provenance["scored"] is True
    # the dataset shows in `list`
    capsys.readouterr()
    assert main(["data", "list", "--data-dir", str(cdir)]) == 0
    assert "team-data  [scored]  2/2 cached" in capsys.readouterr().out
    # a deleted cached copy is fetched back from its file:// address
    (cdir / "own1_flc.fits").unlink()
    assert main(["data", "fetch", "team-data", "--data-dir", str(cdir)]) == 0
    assert (cdir / "own1_flc.fits").is_file()


def test_add_with_wrong_hash_and_bad_url(tmp_path, capsys):
    f = tmp_path / "x_flc.fits"
    f.write_bytes(b"hello")
    assert main(["data", "add", str(f), "--sha256", "0" * 64, "--data-dir", str(tmp_path)]) == 1
    assert "not the expected" in capsys.readouterr().err
    assert main(["data", "add", str(f), "--url", "mast:HST/product/x", "--data-dir",
                 str(tmp_path)]) == 1
    assert "not a download address" in capsys.readouterr().err
    assert main(["data", "add", "https://example.invalid/x.fits", "--offline",
                 "--data-dir", str(tmp_path)]) == 1
    assert "needs --sha256" in capsys.readouterr().err
    assert not (tmp_path / "user_registry.txt").exists()


def test_add_url_with_hash_offline_records_without_network(tmp_path, capsys):
    url = "https://mast.stsci.edu/api/v0.1/Download/file?uri=mast:HST/product/abc01_flc.fits"
    assert main(["data", "add", url, "--sha256", "ab" * 32, "--offline",
                 "--data-dir", str(tmp_path)]) == 0
    assert f"abc01_flc.fits {'ab' * 32} {url}" in (tmp_path / "user_registry.txt").read_text()


def test_console_script_help():
    exe = Path(sys.executable).with_name("crbench")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pytest_crbench.cli"]
    out = subprocess.run([*cmd, "data", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "seed" in out.stdout and "verify" in out.stdout
