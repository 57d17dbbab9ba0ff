"""Fast unit tests of the run state, evaluation, analysis, checks and results writing on
small in-memory groups (no pytest plugin, no registry, no deepCR)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_group
from pytest_crbench.bench.analysis import Analysis
from pytest_crbench.bench.checks import (FloorFailure, PhotometryCheck, PixelFloorCheck,
                                         SmokeCheck, StabilityCheck, StabilityFailure,
                                         checks_for)
from pytest_crbench.bench.floors import load_floors
from pytest_crbench.bench.records import PhotometrySummary, StabilityAnalysis
from pytest_crbench.bench.results import results_document
from pytest_crbench.bench.run import BenchSession
from pytest_crbench.bench.settings import make_settings
from pytest_crbench.bench.store import Memo, RunResults
from pytest_crbench.errors import CRBenchConfigError, CRBenchDataError
from pytest_crbench.reporting.outputs import write_outputs
from pytest_crbench.science.exposures import Dataset, Group
from pytest_crbench.science.metrics import METRICS


class TruthDetector:
    """Flags exactly the injected cosmic rays (CRTRUTH > 0)."""

    name, version, threshold = "truth", "1", None

    def detect(self, image, ignore, exposure):
        return exposure.crtruth > 0


class BlindDetector:
    """Flags nothing."""

    name, version, threshold = "blind", "1", None

    def detect(self, image, ignore, exposure):
        return np.zeros(image.shape, bool)


def _dataset(n_groups=3, name="mem"):
    groups = []
    for i in range(n_groups):
        g = make_group(3, seed=i)
        groups.append(Group(f"g{i}", g.exposures, date_obs=f"201{i}-01-01"))
    return Dataset(name, groups, version="test")


def _bench(tmp_path, n_groups=3, **options):
    s = make_settings(model=["truth", "blind"], dataset=["mem"], k=[3, 10], **options)
    bench = BenchSession(s)
    bench.add_detector("truth", TruthDetector())
    bench.add_detector("blind", BlindDetector())
    bench.add_dataset(_dataset(n_groups))
    return bench


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return _bench(tmp_path_factory.mktemp("bench"))


# --------------------------------------------------------------------------- store

def test_memo_makes_once_and_remembers_errors():
    calls = []

    def broken():
        calls.append(1)
        raise CRBenchDataError("no such dataset")

    memo = Memo()
    assert memo.get("a", lambda: 1) == 1 and memo.get("a", lambda: 2) == 1
    for _ in range(2):
        with pytest.raises(CRBenchDataError, match="no such dataset"):
            memo.get("b", broken)
    assert calls == [1]
    memo.put("b", 3)
    assert memo.get("b", broken) == 3


def test_make_settings_rejects_unknown_options():
    with pytest.raises(CRBenchConfigError, match="unknown option.*colour"):
        make_settings(colour="red")


# --------------------------------------------------------------------------- evaluation

def test_run_scores_and_analyses_are_computed_once(bench):
    run = bench.run("truth", "mem")
    assert bench.run("truth", "mem") is run
    ev, a = run.evaluation, run.analysis
    assert ev.regions == ["full", "k3", "k10"]
    assert len(ev.exposures) == 9
    full = ev.scores("full")
    assert full.counts == ev.pooled("full")
    assert full.recall.value == full.counts.tp / (full.counts.tp + full.counts.fn)
    assert isinstance(a.photometry, PhotometrySummary)
    assert isinstance(a.stability, StabilityAnalysis)
    assert [g.group for g in a.stability.groups] == ["g0", "g1", "g2"]
    assert a.stability.region == "k3"
    assert bench.results.evaluations == [ev]


def test_blind_detector_has_undefined_precision(bench):
    sc = bench.evaluation("blind", "mem").scores("full")
    assert sc.counts.tp == 0 and sc.counts.fp == 0
    assert sc.precision.value is None and "TP+FP=0" in sc.precision.reason
    assert sc.recall.value == 0.0
    assert sc.f1.value == 0.0 and sc.f2.value == 0.0
    assert sc.to_record()["undefined"] == {"precision": sc.precision.reason}


def test_results_follow_the_configured_order(bench):
    bench.run("blind", "mem")
    bench.run("truth", "mem")
    assert [e.detector for e in bench.results.evaluations] == ["truth", "blind"]
    assert [a.detector for a in bench.results.analyses] == ["truth", "blind"]


# --------------------------------------------------------------------------- checks

def test_checks_of_a_run_have_unique_node_names(bench):
    checks = checks_for(bench.settings, lambda ds: True)
    names = [c.node_name() for c in checks]
    assert len(names) == len(set(names))
    # regions x metrics against the reference and the truth, bins x limits, stability
    per_pair = 2 * 3 * len(METRICS) + 4 * 3 + 3
    assert len(checks) == 2 * per_pair
    # the checks against the truth are items only where the floors name them
    assert all(not c.optional for c in bench.checks) and len(bench.checks) == 2 * (
        per_pair - 3 * len(METRICS))
    truth = PixelFloorCheck("truth", "mem", "k3", "recall", "truth")
    assert truth.optional and truth.node_name() == "truth::mem::truth::k3::recall"
    assert str(truth) == "truth / mem / truth / k3 / recall"
    assert checks_for(bench.settings, lambda ds: False) == [SmokeCheck("truth", "mem"),
                                                            SmokeCheck("blind", "mem")]
    c = PixelFloorCheck("truth", "mem", "k3", "recall")
    assert c.node_name() == "truth::mem::k3::recall"
    assert ("region", "k3") in c.properties and ("metric", "recall") in c.properties


def test_pixel_floor_check_messages(bench):
    value = bench.evaluation("truth", "mem").scores("full").recall.value
    check = PixelFloorCheck("truth", "mem", "full", "recall")
    assert check.check(bench).passed and check.check(bench).limit is None
    bench.floors[check] = 1.0 if value < 1 else 0.5
    try:
        out = check.check(bench)
        assert out.passed == (value >= bench.floors[check])
        if not out.passed:
            assert out.message.startswith("truth / mem / full / recall: observed ")
            assert "is below floor 1.000 (short by" in out.message
            assert check.failure is FloorFailure
        undefined = PixelFloorCheck("blind", "mem", "full", "precision")
        bench.floors[undefined] = 0.5
        out = undefined.check(bench)
        assert not out.passed and out.value is None
        assert "score is undefined (no predicted cosmic-ray pixels (TP+FP=0)) but has " \
               "floor 0.500" in out.message
    finally:
        bench.floors.clear()


def test_photometry_check_ceiling_and_undefined(bench):
    block = bench.analysis("truth", "mem").summary_block("all")
    check = PhotometryCheck("truth", "mem", "all", "max_anomalous")
    assert check.kind == "max" and check.field == "anomalous"
    out = check.check(bench)
    assert out.passed and out.value == block.anomalous
    big = PhotometryCheck("truth", "mem", "200-400", "min_inside_97_103")
    bench.floors[big] = 0.5
    try:
        out = big.check(bench)
        assert out.value is None and not out.passed  # the scene has no 200-400 px star
        assert out.message == (
            f"{big}: fraction is undefined ({out.reason}) but has limit 0.500")
        assert out.reason in ("no star measured", "no contaminated star")
    finally:
        bench.floors.clear()


def test_stability_check_skips_with_too_few_groups(tmp_path):
    bench = _bench(tmp_path, n_groups=2)
    check = StabilityCheck("truth", "mem", "f1")
    assert check.failure is StabilityFailure
    out = check.check(bench)
    assert out.passed and out.skip.startswith("truth / mem / stability / f1: not assessed: ")
    assert "at least 3 groups" in out.skip


def test_check_records_the_outcome(bench):
    before = len(bench.outcomes)
    bench.check(PixelFloorCheck("truth", "mem", "k10", "f1"))
    assert len(bench.outcomes) == before + 1
    assert bench.outcomes[-1].check == PixelFloorCheck("truth", "mem", "k10", "f1")


# --------------------------------------------------------------------------- records

def test_analysis_round_trips_through_json(bench):
    a = bench.analysis("truth", "mem")
    record = json.loads(json.dumps(a.to_record(), default=float))
    back = Analysis.from_record(record)
    assert back.photometry == a.photometry
    assert back.stability.to_record() == a.stability.to_record()
    assert back.to_record()["density"] == json.loads(json.dumps(a.to_record()["density"]))


def test_worker_records_merge_into_the_same_results_document(bench):
    bench.run("truth", "mem")
    bench.run("blind", "mem")
    settings = bench.settings.as_dict()
    direct = results_document(bench.results, settings)
    merged = RunResults(models=bench.settings.model, datasets=bench.settings.dataset)
    merged.merge(json.loads(json.dumps(bench.results.new_record())))
    assert json.dumps(results_document(merged, settings), default=str) == \
        json.dumps(direct, default=str)


# --------------------------------------------------------------------------- outputs

def test_write_outputs_json_and_generated_floors(tmp_path):
    bench = _bench(tmp_path, json=str(tmp_path / "r.json"),
                   generate_floors=str(tmp_path / "floors.toml"))
    for spec in ("truth", "blind"):
        bench.run(spec, "mem")
    lines = write_outputs(bench)
    assert lines[0] == f"results JSON: {tmp_path / 'r.json'}"
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["schema"] == "crbench-results/3"
    pooled = [r for r in doc["scores"] if r["exposure"] is None]
    assert [(r["detector"], r["region"], r["against"]) for r in pooled] == [
        (det, region, against) for det in ("truth", "blind")
        for against in ("reference", "truth") for region in ("full", "k3", "k10")]
    assert {r["truth"] for r in pooled if r["against"] == "truth"} == {"CRTRUTH > 5 sigma"}
    assert len(doc["stability"]) == 2 and len(doc["photometry"]) == 2
    floors = load_floors(tmp_path / "floors.toml", metrics=METRICS)
    recall = bench.evaluation("truth", "mem").scores("full").recall.value
    assert 0 < floors[PixelFloorCheck("truth", "mem", "full", "recall")] <= recall
    # the blind detector flags nothing: no precision, and the file says why
    assert PixelFloorCheck("blind", "mem", "full", "precision") not in floors
    text = (tmp_path / "floors.toml").read_text()
    assert "# no precision: no flagged pixels" in text
    assert "[made_with.truth]" in text
    # the statistics sections of the results JSON
    assert doc["bootstrap"]["replicates"] == 1000 and doc["bootstrap"]["seed"] == 0
    iv = next(r for r in doc["intervals"] if (r["detector"], r["kind"], r["part"],
                                               r["metric"]) == ("truth", "pixels", "full",
                                                                "recall"))
    assert iv["value"] == pytest.approx(recall)
    assert iv["interval"] is None or iv["interval"][0] <= recall <= iv["interval"][1]
    assert doc["comparison"] == {"baseline": None, "max_drop": 0.02, "differences": []}
    # photometric limits need 20 contaminated stars: these small groups get comments
    assert any(isinstance(c, PhotometryCheck) for c in floors) or \
        "contaminated stars (fewer than 20)" in text or "no contaminated stars" in text
    assert not any(isinstance(c, StabilityCheck) for c in floors)


def test_gallery_holds_the_worst_anomalous_stars_of_the_whole_dataset(bench):
    """One definition of "worst" (|log F_cleaned/F_clean|) across exposures: the gallery
    is the top of all anomalous star images, not of the first exposures seen."""
    from pytest_crbench.science.gallery import ratio_deviation

    a = bench.analysis("blind", "mem")
    anomalous = [r for r in a.stars if r["anomalous"]]
    assert anomalous, "the blind detector leaves contaminated stars anomalous"
    devs = sorted((float(ratio_deviation(np.nan if r["ratio_cleaned"] is None
                                         else r["ratio_cleaned"])) for r in anomalous),
                  reverse=True)
    shown = [float(ratio_deviation(np.nan if g.ratio_cleaned is None else g.ratio_cleaned))
             for g in a.gallery]
    assert shown == devs[:len(shown)] and len(shown) == min(len(devs), 6)
    assert ratio_deviation(0.5) == pytest.approx(ratio_deviation(2.0))
