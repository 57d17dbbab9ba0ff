"""Registry and groups file: the shipped files are valid; bad input gives clear errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.datasets.catalog import (
    GROUPS_FILE, add_user_group, default_registry_path, load_groups, load_registry,
    parse_groups, parse_registry, read_registry_file, user_registry_path)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hst"
H = "a" * 64


def test_package_registry_matches_sha256sums():
    reg = read_registry_file(default_registry_path())
    assert len(reg) == 17
    sums = SHARED / "SHA256SUMS"
    if sums.is_file():
        expected = dict(line.split()[::-1] for line in sums.read_text().splitlines() if line)
        assert {n: e.sha256 for n, e in reg.items()} == expected
    for name, entry in reg.items():
        if name.startswith(("o565", "j6gp")):
            assert entry.url == ("https://mast.stsci.edu/api/v0.1/Download/file?uri="
                                 f"mast:HST/product/{name}")


def test_package_registry_is_a_pooch_registry():
    import pooch

    p = pooch.create(path=".", base_url="https://example.invalid/")
    p.load_registry(default_registry_path())
    assert len(p.registry) == 17 and p.urls


def test_package_groups_file_is_valid():
    groups = load_groups(None)
    assert set(groups.datasets) >= {"stis-crsplit", "wfpc2-smoke", "hrc-smoke"}
    stis = groups.datasets["stis-crsplit"]
    assert stis.scored and "o56502010" not in stis.groups and len(stis.groups) == 6
    assert not groups.groups["o56502010"].usable and "4x" in groups.groups["o56502010"].reason
    assert not groups.datasets["wfpc2-smoke"].scored
    assert not groups.datasets["hrc-smoke"].scored
    assert all(groups.groups[g].kind == "crsplit" for g in stis.groups)


@pytest.mark.parametrize("line, match", [
    (f"x.fits {H[:-1]} https://e.org/x", "not a sha256"),
    (f"x.fits md5:{H[:32]} https://e.org/x", "md5.*not supported"),
    (f"x.fits {H} mast:HST/product/x", "not a download address"),
    (f"x.fits {H} https:///nohost", "not a download address"),
    (f"x.fits {H}", "3 fields"),
    (f"../x.fits {H} https://e.org/x", "not allowed"),
])
def test_bad_registry_lines(line, match):
    with pytest.raises(CRBenchConfigError, match=match) as info:
        parse_registry(f"# comment\n\n{line}\n", source="reg.txt")
    assert "reg.txt:3" in str(info.value)


def test_registry_accepts_prefix_and_uppercase_and_rejects_duplicates():
    reg = parse_registry(f"a.fits sha256:{H.upper()} https://e.org/a\n")
    assert reg["a.fits"].sha256 == H
    with pytest.raises(CRBenchConfigError, match="registered twice"):
        parse_registry(f"a.fits {H} https://e.org/a\na.fits {H} https://e.org/b\n")


def _reg():
    return parse_registry(f"a.fits {H} https://e.org/a\nb.fits {H} https://e.org/b\n")


def test_group_referring_to_unknown_file():
    data = {"groups": {"g": {"kind": "pointing", "files": ["a.fits", "nope.fits"]}}}
    with pytest.raises(CRBenchConfigError, match=r"\[groups.g\].*'nope.fits' is not in the registry"):
        parse_groups(data, source="groups.toml", registry=_reg())


@pytest.mark.parametrize("group, match", [
    ({"kind": "stacked", "files": ["a.fits"]}, "kind = 'stacked'"),
    ({"kind": "pointing"}, "'files' key is missing"),
    ({"kind": "pointing", "files": ["a.fits"], "loader": "magic"}, "loader = 'magic'"),
    ({"kind": "pointing", "files": ["a.fits"], "date_obs": ["2020/01/01"]}, "not YYYY-MM-DD"),
    ({"kind": "pointing", "files": ["a.fits"], "usable": False}, "needs a 'reason'"),
    ({"kind": "pointing", "files": ["a.fits"], "colour": "red"}, "unknown key"),
])
def test_bad_groups(group, match):
    with pytest.raises(CRBenchConfigError, match=match):
        parse_groups({"groups": {"g": group}}, source="groups.toml", registry=_reg())


def test_bad_datasets():
    groups = {"g": {"kind": "pointing", "files": ["a.fits"]},
              "u": {"kind": "pointing", "files": ["b.fits"], "usable": False, "reason": "bad"}}
    with pytest.raises(CRBenchConfigError, match="group 'h' is not declared"):
        parse_groups({"groups": groups, "datasets": {"d": {"description": "x", "groups": ["h"]}}},
                     source="s", registry=_reg())
    with pytest.raises(CRBenchConfigError, match="marked unusable"):
        parse_groups({"groups": groups, "datasets": {"d": {"description": "x", "groups": ["u"]}}},
                     source="s", registry=_reg())
    with pytest.raises(CRBenchConfigError, match="schema"):
        parse_groups({"schema": 2}, source="s", registry=None)


def test_user_registry_and_groups(tmp_path, monkeypatch):
    monkeypatch.delenv("CRBENCH_USER_REGISTRY", raising=False)
    path = user_registry_path(tmp_path)
    path.write_text(f"mine.fits {H} file:///somewhere/mine.fits\n")
    reg = load_registry(tmp_path)
    assert "mine.fits" in reg and "o56502020_raw.fits" in reg
    add_user_group(tmp_path / "user_groups.toml", group="mygroup", kind="pointing",
                   files=["mine.fits"], dataset="team", description="our data")
    add_user_group(tmp_path / "user_groups.toml", group="g2", kind="pointing",
                   files=["mine.fits"], dataset="team")
    groups = load_groups(tmp_path)
    assert groups.datasets["team"].groups == ["mygroup", "g2"]
    assert "stis-crsplit" in groups.datasets
    # a package file redefined with another hash is refused
    path.write_text(f"o56502020_raw.fits {H} https://e.org/x\n")
    with pytest.raises(CRBenchConfigError, match="another sha256"):
        load_registry(tmp_path)


def test_groups_toml_parses_as_plain_toml():
    with open(GROUPS_FILE, "rb") as fh:
        assert tomllib.load(fh)["schema"] == 1


def test_one_registry_file_shipped_in_the_package():
    """The top-level data_registry.txt is the package's copy (a symbolic link), so the
    two can never drift; the package finds its registry without the repository."""
    from pytest_crbench.datasets.catalog import PACKAGE_DIR, default_registry_path

    top = PACKAGE_DIR.parent / "data_registry.txt"
    assert default_registry_path() == PACKAGE_DIR / "data" / "data_registry.txt"
    if top.exists():  # a source checkout
        assert top.resolve() == default_registry_path().resolve()
