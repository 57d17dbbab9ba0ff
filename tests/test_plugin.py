"""The plugin itself, driven through pytester on the simulated ``sim-tiny`` data."""

import json
import re
import textwrap

import numpy as np
import pytest

from conftest import make_project
from pytest_crbench.bench.checks import PixelFloorCheck
from pytest_crbench.bench.floors import load_floors
from pytest_crbench.science.metrics import METRICS

USER_DETECTOR = textwrap.dedent('''
    import numpy as np
    from scipy import ndimage

    class LocalMedian:
        """Flags pixels far above their 5x5 local median (a simple user detector)."""
        name = "localmedian"
        version = "1"
        threshold = None

        def __init__(self, nsigma=6.0):
            self.nsigma = nsigma

        def detect(self, image, ignore, exposure):
            med = ndimage.median_filter(image, 5)
            noise = np.sqrt(np.maximum(med, 0) + exposure.read_noise ** 2)
            return (image - med) > self.nsigma * noise

    def make(**options):
        return LocalMedian()

    def make_blind(**options):
        det = LocalMedian(nsigma=1e9)
        det.name = "blind"
        return det
''')

N_REGIONS = 3  # full + the two thresholds used below
N_PHOT = 4 * 3  # photometry items: (all + 3 size bins) x 3 limits, pass without floors
N_STAB = 3  # stability items f1, f2, rms: skipped on sim-tiny (2 groups < 3)


@pytest.fixture
def project(pytester, crbench_data_dir, monkeypatch):
    return make_project(pytester, monkeypatch, crbench_data_dir, USER_DETECTOR)


def test_without_the_flag_nothing_runs_and_nothing_heavy_is_imported(pytester):
    pytester.makepyfile(test_plain=textwrap.dedent('''
        import sys
        def test_heavy_modules_absent():
            heavy = [m for m in ("torch", "deepCR", "astropy", "sep", "numpy") if m in sys.modules]
            assert heavy == []
    '''))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "cosmic-ray detector scores" not in result.stdout.str()
    assert "crbench::" not in result.stdout.str()


def test_fixtures_skip_without_the_flag(pytester):
    pytester.makepyfile("def test_x(crbench_scores):\n    pass\n")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*crbench fixtures need the --crbench option*"])


def test_gate_items_are_collected_and_reported(project):
    result = project.runpytest("--crbench", "-v")
    result.assert_outcomes(passed=N_REGIONS * 4 + N_PHOT, skipped=N_STAB)
    result.stdout.fnmatch_lines([
        "*crbench::mydet:make::sim-tiny::full::recall PASSED*",
        "*crbench: cosmic-ray detector scores*",
        "*mydet:make on sim-tiny*",
        "*region*recall*precision*F1*F2*",
        "*no floors configured*",
    ])
    # the header names the reference rule; Table 1 against the truth and the
    # reference audit per region follow Table 1 against the reference
    result.stdout.fnmatch_lines([
        "*dataset sim-tiny: recall and precision*",
        "*against the reference: astrodrizzle (snr 5/1.5, scale 1.2/0.7, grow 1)*",
        "*against the truth: CRTRUTH > 5 sigma (* pixels of fainter injected charge left out*",
        "*reference audit against CRTRUTH (6 exposures*",
        "*reference vs truth*full*3*20*",
        "*recall (significant)*",
    ])


def test_floors_generate_then_pass_then_fail_exactly_the_low_ones(project):
    floors = project.path / "floors.toml"
    project.runpytest("--crbench", f"--crbench-generate-floors={floors}").assert_outcomes(
        passed=N_REGIONS * 4 + N_PHOT, skipped=N_STAB)
    text = floors.read_text()
    assert 'schema = "crbench-floors/1"' in text and "[floors.\"mydet:make\".sim-tiny.k20]" in text
    # too few positives: no floor, and the file says why
    assert re.search(r"# no recall: only \d+ reference CR pixels \(fewer than 100\)", text)
    assert '[made_with."mydet:make"]\nversion = "1"' in text
    # sim-tiny carries CRTRUTH: truth tables too, which become items where they hold limits
    assert '[floors."mydet:make".sim-tiny.truth.full]' in text
    n_truth = sum(1 for c in load_floors(floors, metrics=METRICS)
                  if isinstance(c, PixelFloorCheck) and c.against == "truth")
    assert n_truth > 0
    result = project.runpytest("--crbench", f"--crbench-floors={floors}", "-v")
    result.assert_outcomes(passed=N_REGIONS * 4 + N_PHOT + n_truth, skipped=N_STAB)
    result.stdout.fnmatch_lines(["*crbench::mydet:make::sim-tiny::truth::full::recall PASSED*"])
    # raise one floor above anything reachable: exactly that item fails, and says why
    lines = text.splitlines()
    i = lines.index('[floors."mydet:make".sim-tiny.full]')
    j = next(n for n in range(i + 1, len(lines)) if lines[n].startswith("recall"))
    lines[j] = "recall = 1.0"
    floors.write_text("\n".join(lines))
    result = project.runpytest("--crbench", f"--crbench-floors={floors}")
    result.assert_outcomes(passed=N_REGIONS * 4 - 1 + N_PHOT + n_truth, failed=1,
                           skipped=N_STAB)
    result.stdout.fnmatch_lines([
        "*FloorFailure: mydet:make / sim-tiny / full / recall: observed 0.* is below floor 1.000*",
        "FAILED crbench::mydet:make::sim-tiny::full::recall*",
    ])
    # floors made with another detector version: a warning line, and the failure says so
    floors.write_text("\n".join(lines).replace('version = "1"', 'version = "0.9"'))
    result = project.runpytest("--crbench", f"--crbench-floors={floors}")
    result.assert_outcomes(passed=N_REGIONS * 4 - 1 + N_PHOT + n_truth, failed=1,
                           skipped=N_STAB)
    result.stdout.fnmatch_lines([
        "*below floor 1.000*(floors in *floors.toml for mydet:make were generated with "
        "version '0.9' (this run: '1'): they may not apply)",
        "WARNING: floors in *floors.toml for mydet:make were generated with version '0.9'*",
    ])


def test_json_and_masks_are_as_documented(project):
    out = project.path / "res.json"
    masks = project.path / "masks"
    project.runpytest("--crbench", f"--crbench-json={out}", f"--crbench-save-masks={masks}",
                      "--crbench-model=mydet:make", "--crbench-model=mydet:make_blind"
                      ).assert_outcomes(passed=2 * (N_REGIONS * 4 + N_PHOT),
                                        skipped=2 * N_STAB)
    doc = json.loads(out.read_text())
    assert doc["schema"] == "crbench-results/3"
    assert set(doc["provenance"]["detectors"]) == {"mydet:make", "mydet:make_blind"}
    assert doc["provenance"]["datasets"]["sim-tiny"]
    pooled = [r for r in doc["scores"] if r["exposure"] is None]
    assert {r["region"] for r in pooled} == {"full", "k3", "k20"}
    keys = {"detector", "dataset", "exposure", "region", "tp", "fp", "fn", "precision",
            "recall", "f1", "f2"}
    assert all(keys <= set(r) for r in doc["scores"])
    blind = [r for r in pooled if r["detector"] == "mydet:make_blind"]
    assert all(r["precision"] is None and "TP+FP=0" in r["undefined"]["precision"] for r in blind)
    assert all(r["recall"] == 0.0 for r in blind)
    assert doc["reference_audit"] and all(0 < a["recall"] <= 1 for a in doc["reference_audit"]
                                          if a["region"] == "full")
    assert {a["region"] for a in doc["reference_audit"]} == {"full", "k3", "k20"}
    assert doc["provenance"]["reference"] == {
        "rule": "astrodrizzle", "snr": [5.0, 1.5], "scale": [1.2, 0.7], "grow": 1,
        "ctegrow": 0, "saturation": None, "sat_box": 7}
    assert doc["provenance"]["truth_snr"] == 5.0
    against = {(r["against"], r["truth"]) for r in doc["scores"]}
    assert against == {("reference", None), ("truth", "CRTRUTH > 5 sigma")}
    assert all(r["excluded"] >= 0 for r in doc["scores"] if r["against"] == "truth")

    # every per-exposure score can be recomputed from the mask files
    from astropy.io import fits

    rows = [r for r in doc["scores"] if r["exposure"] and r["detector"] == "mydet:make"]
    files = sorted((masks / "sim-tiny" / "mydet_make").glob("*.fits"))
    assert len(files) == len({r["exposure"] for r in rows})
    for path in files:
        with fits.open(path) as h:
            assert [x.name for x in h[1:]] == ["REFMASK", "IGNORE", "PRED", "REGION", "TRUTH"]
            assert h["REFMASK"].data.dtype.name == "uint8" and h["REGION"].data.dtype.name == "int16"
            ref, ign, pred, reg, truth = (h[n].data.astype(int) for n in (
                "REFMASK", "IGNORE", "PRED", "REGION", "TRUTH"))
            exposure = h[0].header["EXPOSURE"]
            assert h[0].header["REFRULE"] == "astrodrizzle" and h["TRUTH"].header["TRUTHSNR"] == 5
        for r in (r for r in rows if r["exposure"] == exposure):
            inside = (reg >= int(r["region"][1:])) if r["region"] != "full" else np.ones_like(reg, bool)
            valid = inside & (ign == 0)
            # against the reference: REFMASK; against the truth: TRUTH == 1, with the
            # faint charge (TRUTH == 2) left out of both classes
            positive, valid = ((ref == 1), valid) if r["against"] == "reference" else (
                (truth == 1), valid & (truth != 2))
            assert r["tp"] == int(((pred == 1) & positive & valid).sum())
            assert r["fp"] == int(((pred == 1) & ~positive & valid).sum())
            assert r["fn"] == int(((pred == 0) & positive & valid).sum())
            if r["against"] == "truth":
                assert r["excluded"] == int((inside & (ign == 0) & (truth == 2)).sum())


def test_custom_fixtures_are_parametrized(project):
    project.makepyfile(test_custom=textwrap.dedent('''
        def test_scores(crbench_scores, crbench_detector, crbench_reference, crbench_group):
            assert crbench_detector.name == "localmedian"
            assert len(crbench_reference.clean) == len(crbench_group.exposures)
            assert crbench_scores["full"]["recall"].value > 0.3
    '''))
    result = project.runpytest("--crbench", "test_custom.py", "-k", "test_scores")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 passed*"])


@pytest.mark.parametrize("args, message", [
    (["--crbench-k=3,x"], "*pytest-crbench: --crbench-k: 'x' is not a number*"),
    (["--crbench-device=gpu0"], "*--crbench-device: expected one of cpu, cuda, auto*"),
])
def test_bad_options_are_usage_errors(project, args, message):
    result = project.runpytest("--crbench", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_malformed_floors_is_a_usage_error(project):
    (project.path / "bad.toml").write_text("schema = 'crbench-floors/1'\n[floors.x.y.full]\nrecall = 'high'\n")
    result = project.runpytest("--crbench", "--crbench-floors=bad.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*bad.toml: floors.'x'.y.full.recall must be a number from 0 to 1*"])
