"""Issue 10, data side: `crbench data add` validates before writing (case 3), read-only
caches (case 8), locks held by hung processes (case 9), degenerate or damaged data
answered once and clearly (cases 5 and 6).  Real FITS files, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import make_group
from pytest_crbench.cli import main
from pytest_crbench.datasets.fits import write_exposures
from pytest_crbench.errors import CRBenchDataError


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path):
    monkeypatch.delenv("CRBENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("CRBENCH_USER_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)  # no pyproject.toml [tool.crbench] above


def write_group(folder: Path, n: int = 3, *, seed: int = 0, scale=None, zero=None,
                saturation=None) -> list[Path]:
    """``n`` FITS files of one pointing (96 x 96, ACS/WFC-like, electrons)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, exp in enumerate(make_group(n, seed=seed).exposures):
        if saturation is not None:
            exp.saturation = saturation
        if scale is not None and i == scale[0]:
            exp.sci = exp.sci * np.float32(scale[1])
        if zero is not None and i == zero:
            exp.sci = np.zeros_like(exp.sci)
        paths.append(write_exposures(folder / f"e{seed}_{i}_flt.fits", [exp]))
    return paths


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".locks" not in p.parts}


# ------------------------------------------------------------------ case 3: data add


def test_add_refuses_a_package_group_name_and_writes_nothing(tmp_path, capsys):
    cache = tmp_path / "c"
    files = write_group(tmp_path / "in")
    assert main(["data", "add", *map(str, files), "--group", "mine", "--dataset", "team",
                 "--data-dir", str(cache)]) == 0
    before = snapshot(cache)
    capsys.readouterr()
    rc = main(["data", "add", *map(str, write_group(tmp_path / "in2", seed=1)),
               "--group", "o56502020", "--data-dir", str(cache)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "--group 'o56502020': the package already declares a group of that name" in err
    assert snapshot(cache) == before
    assert main(["data", "list", "--data-dir", str(cache)]) == 0  # the cache still works


def test_add_same_group_twice_is_refused_cleanly(tmp_path, capsys):
    cache = tmp_path / "c"
    assert main(["data", "add", *map(str, write_group(tmp_path / "in")), "--group", "g1",
                 "--dataset", "team", "--data-dir", str(cache)]) == 0
    before = snapshot(cache)
    capsys.readouterr()
    rc = main(["data", "add", *map(str, write_group(tmp_path / "in2", seed=1)),
               "--group", "g1", "--dataset", "team", "--data-dir", str(cache)])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and "TOMLDecodeError" not in err
    assert "--group 'g1' is already declared in" in err and "user_groups.toml" in err
    assert snapshot(cache) == before  # the second set of files was not registered


@pytest.mark.parametrize("damage", ["truncated", "not-fits"])
def test_add_refuses_a_damaged_file_before_writing(tmp_path, capsys, damage):
    cache = tmp_path / "c"
    files = write_group(tmp_path / "in")
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a FITS\n" * 50)
    rc = main(["data", "add", *map(str, files), "--group", "g1", "--dataset", "team",
               "--data-dir", str(cache)])
    err = capsys.readouterr().err
    assert rc == 1
    assert (f"crbench: error: refused, nothing was written: {files[1]}: "
            + ("cannot be read: the file is truncated" if damage == "truncated"
               else "not a readable FITS file")) in err
    assert not (cache / "user_registry.txt").exists()
    assert not (cache / "user_groups.toml").exists()
    assert not any(cache.glob("e0_*"))


def test_add_refuses_a_scored_group_of_one_exposure(tmp_path, capsys):
    cache = tmp_path / "c"
    rc = main(["data", "add", str(write_group(tmp_path / "in", 1)[0]), "--group", "g1",
               "--dataset", "team", "--data-dir", str(cache)])
    assert rc == 1
    assert "a scored group needs at least 2 exposures of each chip" in capsys.readouterr().err
    assert not (cache / "user_registry.txt").exists()


@pytest.mark.parametrize("how", ["scaled", "zero"])
def test_add_refuses_a_degenerate_exposure_in_the_group(tmp_path, capsys, how):
    cache = tmp_path / "c"
    kw = {"scale": (2, 1e32)} if how == "scaled" else {"zero": 2}
    rc = main(["data", "add", *map(str, write_group(tmp_path / "in", **kw)), "--group", "g1",
               "--dataset", "team", "--data-dir", str(cache)])
    err = capsys.readouterr().err
    assert rc == 1 and "refused, nothing was written: group 'g1': exposure" in err
    assert ("x off the median of its group" if how == "scaled" else "SCI is zero everywhere") in err
    assert not (cache / "user_registry.txt").exists()


# ------------------------------------------------------------------ case 8: read-only cache


def read_only_command(folder: Path, argv: list[str]) -> list[str] | None:
    """``argv`` run with ``folder`` read-only: a read-only bind mount in a private mount
    namespace when we are root (root ignores permissions), else the folder's permissions
    are dropped (restored by :func:`writable_again`).  None if neither is possible."""
    import shlex
    import shutil

    if os.geteuid() != 0:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        return argv
    if shutil.which("unshare") is None:
        return None
    q = shlex.quote(str(folder))
    script = (f"mount --bind {q} {q} && mount -o remount,bind,ro {q} && exec "
              + " ".join(shlex.quote(a) for a in argv))
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {q} {q}"],
                           capture_output=True)
    return ["unshare", "-m", "sh", "-c", script] if probe.returncode == 0 else None


def writable_again(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("CRBENCH_DATA_DIR", None)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, **kw)


LOAD_TEAM = ("import sys; from pytest_crbench.datasets.loading import load_dataset; "
             "ds = load_dataset('team', data_dir=sys.argv[1], offline=True); "
             "print('exposures', sum(len(g.exposures) for g in ds.groups))")


def test_read_only_cache_verifies_and_loads(tmp_path):
    cache = tmp_path / "c"
    assert main(["data", "add", *map(str, write_group(tmp_path / "in")), "--group", "g1",
                 "--dataset", "team", "--data-dir", str(cache)]) == 0
    # a cache filled elsewhere: no hash stamps, no lock folder
    import shutil

    (cache / ".crbench-hashes.json").unlink(missing_ok=True)
    shutil.rmtree(cache / ".locks", ignore_errors=True)
    verify = read_only_command(cache, [sys.executable, "-m", "pytest_crbench.cli", "data",
                                       "verify", "team", "--data-dir", str(cache)])
    if verify is None:
        pytest.skip("cannot make a read-only folder here (root without unshare)")
    try:
        proc = run(verify)
        assert proc.returncode == 0, proc.stderr
        assert "3 good, 0 corrupted (deleted), 0 not cached" in proc.stdout
        assert f"{cache} is read-only" in proc.stdout
        proc = run(read_only_command(cache, [sys.executable, "-c", LOAD_TEAM, str(cache)]))
        assert proc.returncode == 0, proc.stderr
        assert "exposures 3" in proc.stdout
    finally:
        writable_again(cache)
    assert not (cache / ".locks").exists() and not (cache / ".crbench-hashes.json").exists()


# ------------------------------------------------------------------ case 9: hung lock holder


HOLDER = textwrap.dedent('''
    import fcntl, os, sys, time
    path = sys.argv[1]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fh = open(path, "a+")
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    fh.seek(0); fh.truncate(); fh.write(f"{os.getpid()} testhost\\n"); fh.flush()
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))  # a hung process that still ends by itself
''')


@pytest.fixture
def hold_lock():
    procs = []

    def start(path: Path, seconds: float = 60.0) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "locked"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


def test_fetch_waits_for_a_hung_lock_then_names_it(tmp_path, capsys, hold_lock):
    cache = tmp_path / "c"
    files = write_group(tmp_path / "in")
    assert main(["data", "add", *map(str, files), "--group", "g1", "--dataset", "team",
                 "--data-dir", str(cache)]) == 0
    name = files[0].name
    (cache / name).unlink()
    lock = cache / ".locks" / f"{name}.lock"
    holder = hold_lock(lock)
    capsys.readouterr()
    t0 = time.monotonic()
    rc = main(["data", "fetch", "team", "--data-dir", str(cache), "--lock-timeout", "1",
               "--no-progress"])
    waited = time.monotonic() - t0
    err = capsys.readouterr().err
    assert rc == 1 and waited < 30
    assert f"crbench: waiting for the lock {lock}, held by pid {holder.pid} on testhost" in err
    assert f"lock file {lock} is still held by pid {holder.pid} on testhost after 1 s" in err
    holder.kill()
    holder.wait(timeout=10)
    assert main(["data", "fetch", "team", "--data-dir", str(cache), "--no-progress"]) == 0
    assert (cache / name).is_file()


# ------------------------------------------------------------------ cases 5/6: bad data


def test_saturate_not_positive_names_the_file(tmp_path):
    from astropy.io import fits

    from pytest_crbench.datasets.hst import load_product

    path = write_group(tmp_path, 1)[0]
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["SATURATE"] = -1
    with pytest.raises(CRBenchDataError, match=r"\[SCI,1\]: saturation level \(SATURATE\) = "
                                               r"-1.0 e- must be > 0"):
        load_product(path)


def test_exptime_not_a_number_names_the_key(tmp_path):
    from astropy.io import fits

    from pytest_crbench.datasets.hst import load_product

    path = write_group(tmp_path, 1)[0]
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["EXPTIME"] = "long"
    with pytest.raises(CRBenchDataError, match=r"\[SCI,1\]: EXPTIME = 'long' is not a number"):
        load_product(path)


def test_truncated_file_names_the_file(tmp_path):
    from pytest_crbench.datasets.hst import load_product

    path = write_group(tmp_path, 1)[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CRBenchDataError) as info:
        load_product(path)
    assert str(info.value).startswith(f"{path}: cannot be read: the file is truncated")


@pytest.mark.parametrize("how", ["scaled", "zero"])
def test_degenerate_exposure_in_a_group_is_refused(tmp_path, how):
    from pytest_crbench.datasets.hst import load_product
    from pytest_crbench.science.exposures import Group
    from pytest_crbench.science.reference import build_reference

    kw = {"scale": (2, 1e32)} if how == "scaled" else {"zero": 2}
    paths = write_group(tmp_path, 3, **kw)
    group = Group("g1", [e for p in paths for e in load_product(p)])
    expected = (r"exposure .*e0_2_flt.fits\[SCI,1\] has a signal level of .* e-/s, [0-9.e+]+x off "
                "the median of its group" if how == "scaled"
                else r"exposure .*e0_2_flt.fits\[SCI,1\]: SCI is zero everywhere")
    with pytest.raises(CRBenchDataError, match=expected):
        build_reference(group)


def test_data_dir_under_a_regular_file(tmp_path):
    from pytest_crbench.datasets.loading import load_dataset

    (tmp_path / "afile").write_text("x")
    with pytest.raises(CRBenchDataError, match=r"cannot create it: .*afile is a file, not a folder"):
        load_dataset("sim-tiny", data_dir=tmp_path / "afile" / "cache")
