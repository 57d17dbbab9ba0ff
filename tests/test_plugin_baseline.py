"""``--crbench-baseline``: non-inferiority items, comparison summary and JSON (pytester)."""

import json
import textwrap

import pytest

from conftest import make_project

DETECTORS = textwrap.dedent('''
    import numpy as np
    from scipy import ndimage

    class LocalMedian:
        threshold = None

        def __init__(self, nsigma, name):
            self.nsigma, self.name, self.version = nsigma, name, str(nsigma)

        def detect(self, image, ignore, exposure):
            med = ndimage.median_filter(image, 5)
            noise = np.sqrt(np.maximum(med, 0) + exposure.read_noise ** 2)
            return (image - med) > self.nsigma * noise

    def make(**options):
        return LocalMedian(6.0, "localmedian")

    def make_copy(**options):          # the same model under another name
        return LocalMedian(6.0, "copy")

    def make_strict(**options):        # misses most cosmic rays
        return LocalMedian(40.0, "strict")
''')

N_ITEMS = 3 * 4  # regions full, k3, k20 x 4 metrics


@pytest.fixture
def project(pytester, crbench_data_dir, monkeypatch):
    return make_project(pytester, monkeypatch, crbench_data_dir, DETECTORS)


def test_a_model_against_itself_gives_zero_and_passes_everywhere(project):
    out = project.path / "r.json"
    result = project.runpytest("--crbench", "--crbench-model=mydet:make_copy",
                               "--crbench-baseline=mydet:make", f"--crbench-json={out}",
                               "--crbench-bootstrap-replicates=300", "-v")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0
    vs = [line for line in result.stdout.lines if "::vs::mydet:make" in line]
    assert len(vs) == N_ITEMS and all("PASSED" in line for line in vs)
    result.stdout.fnmatch_lines([
        "*crbench::mydet:make_copy::sim-tiny::full::recall::vs::mydet:make PASSED*",
        "mydet:make_copy vs mydet:make on sim-tiny: candidate - baseline*",
        "non-inferiority (max drop 0.02): every score passes",
    ])
    doc = json.loads(out.read_text())
    diffs = doc["comparison"]["differences"]
    assert doc["comparison"]["baseline"] == "mydet:make" and diffs
    for d in diffs:
        assert d["delta"]["value"] in (0.0, None)
        assert d["delta"]["interval"] in (None, [0.0, 0.0])
        assert d["verdict"] in ("no significant difference", "undefined")
    # the baseline ran (it is not in the model list) and has its intervals too
    assert {i["detector"] for i in doc["intervals"]} == {"mydet:make_copy", "mydet:make"}
    assert doc["bootstrap"]["replicates"] == 300


def test_a_worse_candidate_fails_the_non_inferiority_items(project):
    report = project.path / "report"
    result = project.runpytest("--crbench", "--crbench-model=mydet:make_strict",
                               "--crbench-baseline=mydet:make", f"--crbench-report={report}",
                               "--crbench-bootstrap-replicates=300")
    assert result.parseoutcomes()["failed"] >= 1
    page = (report / "report.html").read_text()
    assert 'id="comparison"' in page and "Comparison with the baseline mydet:make" in page
    assert '<b class="warn">worse</b>' in page and "McNemar" in page
    for name in ("comparison_deltas.png", "comparison_flux_ratio.png",
                 "table1_bands_sim-tiny.png"):
        assert (report / "figures" / name).stat().st_size > 5000, name
    result.stdout.fnmatch_lines([
        "*NonInferiorityFailure: mydet:make_strict / sim-tiny / full / recall vs mydet:make: "
        "candidate - baseline = -* percentage points*lies below -2 (--crbench-max-drop)",
        "FAILED crbench::mydet:make_strict::sim-tiny::full::recall::vs::mydet:make*",
    ])
    # a tolerance above the whole drop lets it pass
    result = project.runpytest("--crbench", "--crbench-model=mydet:make_strict",
                               "--crbench-baseline=mydet:make", "--crbench-max-drop=1",
                               "--crbench-bootstrap-replicates=300")
    assert result.parseoutcomes().get("failed", 0) == 0


def test_a_candidate_without_floors_is_held_to_the_baselines(project):
    floors = project.path / "floors.toml"
    project.runpytest("--crbench", "--crbench-model=mydet:make",
                      f"--crbench-generate-floors={floors}").assert_outcomes(passed=24,
                                                                              skipped=3)
    result = project.runpytest("--crbench", "--crbench-model=mydet:make_strict",
                               "--crbench-baseline=mydet:make", f"--crbench-floors={floors}",
                               "--crbench-max-drop=1", "--crbench-bootstrap-replicates=300")
    result.stdout.fnmatch_lines([
        "*FloorFailure: mydet:make_strict / sim-tiny / full / recall: observed * is below "
        "floor * (floors in *floors.toml for mydet:make (applied to mydet:make_strict, which "
        "has none of its own) were generated with version '6.0' (this run: '40.0'): they "
        "may not apply)",
        "WARNING: floors in *floors.toml for mydet:make (applied to mydet:make_strict*",
    ])
