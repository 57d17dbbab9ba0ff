"""Paired comparison (bench/comparison.py) and ``crbench compare`` on real results files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pytest_crbench.bench.comparison import check_comparable, compare_samples, regressions
from pytest_crbench.bench.intervals import Sample, sample_intervals, samples_from_document
from pytest_crbench.cli import main
from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.science.bootstrap import BootstrapConfig

CFG = BootstrapConfig(replicates=300, seed=1)
ROOT = Path(__file__).resolve().parents[1]


def synthetic(detector="a", recall_loss=0, seed=0) -> Sample:
    rng = np.random.default_rng(seed)
    keys = [(f"g{g}", f"g{g}_e{e}") for g in range(5) for e in range(3)]
    full = np.column_stack([rng.integers(400, 600, 15), rng.integers(20, 40, 15),
                            rng.integers(20, 40, 15)])
    full[:, 0] -= recall_loss
    full[:, 2] += recall_loss
    stars = []
    for g, e in keys:
        for i in range(12):
            cont = i < 8
            anom = cont and i < 3 + (recall_loss > 0) * 3
            stars.append({"group": g, "exposure": e, "star_id": i,
                          "size_bin": "16-50" if i % 2 else "50-200",
                          "contaminated": cont, "anomalous": anom,
                          "ratio_cleaned": 1.0 + (0.2 if anom else 0.01 * (i % 3))})
    stab = {f"g{g}": {"f1": 0.8 + 0.01 * g - recall_loss / 1e3, "f2": 0.7, "rms": 0.02}
            for g in range(5)}
    return Sample(detector, "sim", "v1", keys, ["full"], {"full": full}, stars, stab)


def test_self_comparison_is_exactly_zero_and_passes():
    s = synthetic()
    diffs = compare_samples(replace(s, detector="b"), s, CFG)
    assert {d.kind for d in diffs} == {"pixels", "photometry", "stars", "stability"}
    for d in diffs:
        assert d.verdict in ("no significant difference", "undefined"), d
        assert d.delta.value in (0.0, None)
        if d.delta.defined:
            assert d.delta.low == d.delta.high == 0.0
        assert d.non_inferior(0.0)
        if d.p_value is not None:
            assert d.p_value == 1.0 and d.candidate_only == d.baseline_only == 0
    assert regressions(diffs, 0.0) == []


def test_a_degraded_candidate_is_worse_everywhere_it_lost():
    base, cand = synthetic(), synthetic("b", recall_loss=60)
    diffs = {(d.kind, d.part, d.metric): d for d in compare_samples(cand, base, CFG)}
    recall = diffs[("pixels", "full", "recall")]
    assert recall.verdict == "worse" and recall.delta.high < -0.02
    assert not recall.non_inferior(0.02)
    mc = diffs[("stars", "all", "anomalous")]
    assert mc.verdict == "worse" and mc.candidate_only > 0 and mc.baseline_only == 0
    assert mc.p_value < 1e-6
    anomalous = diffs[("photometry", "all", "anomalous")]
    assert anomalous.verdict == "worse" and not anomalous.higher_is_better
    assert diffs[("stability", "groups", "f1")].verdict == "worse"
    assert {d.label for d in regressions(list(diffs.values()), 0.02)} >= {
        "sim pixels full recall", "sim photometry all anomalous"}


def test_paired_comparison_needs_the_same_exposures():
    base = synthetic()
    cand = replace(synthetic("b"), keys=[("g9", "x")] + synthetic().keys[1:])
    with pytest.raises(CRBenchConfigError, match="same exposures"):
        compare_samples(cand, base, CFG)


def test_intervals_cover_every_pooled_score():
    ivs = sample_intervals(synthetic(), CFG)
    kinds = {(i.kind, i.part) for i in ivs}
    assert ("pixels", "full") in kinds and ("photometry", "16-50") in kinds
    assert ("stability", "groups") in kinds
    assert all(i.interval.defined for i in ivs if i.kind == "pixels")


def test_check_comparable_names_the_difference():
    doc = {"provenance": {"version": "0.1", "settings": {"k": [3, 20], "model": ["a"]},
                          "datasets": {"sim": {"version": "1.0.0", "seed": 1}},
                          "reference": {"snr": [5, 1.5]}}}
    check_comparable(doc, json.loads(json.dumps(doc)))
    other = json.loads(json.dumps(doc))
    other["provenance"]["version"] = "0.2"  # who ran it: free
    other["provenance"]["settings"]["model"] = ["b"]  # which detectors: free
    check_comparable(doc, other)
    for path, value, text in ((("settings", "k"), [3, 40], "settings.k"),
                              (("datasets", "sim"), {"version": "1.0.0", "seed": 2},
                               "datasets.sim.seed"),
                              (("reference",), {"snr": [4, 1.5]}, "reference.snr")):
        bad = json.loads(json.dumps(doc))
        target = bad["provenance"]
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value
        with pytest.raises(CRBenchConfigError, match=text.replace(".", r"\.")):
            check_comparable(doc, bad, base_name="A.json", cand_name="B.json")


# --------------------------------------------------------------------------- real files

DETECTORS = textwrap.dedent('''
    import numpy as np
    from scipy import ndimage

    class LocalMedian:
        threshold = None

        def __init__(self, nsigma):
            self.nsigma = nsigma
            self.name = f"localmedian{nsigma:g}"
            self.version = str(nsigma)

        def detect(self, image, ignore, exposure):
            med = ndimage.median_filter(image, 5)
            noise = np.sqrt(np.maximum(med, 0) + exposure.read_noise ** 2)
            return (image - med) > self.nsigma * noise

    def make(**options):
        return LocalMedian(6.0)

    def make_strict(**options):
        return LocalMedian(40.0)
''')


def run_bench(folder: Path, data_dir: Path, models: list[str], k=(3, 20), out="r.json"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mydet.py").write_text(DETECTORS)
    (folder / "pyproject.toml").write_text(textwrap.dedent(f'''
        [tool.crbench]
        model = {json.dumps(models)}
        dataset = ["sim-tiny"]
        k = {list(k)}
        json = "{out}"
    '''))
    env = {**os.environ, "CRBENCH_DATA_DIR": str(data_dir),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(folder)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--crbench", "-q", "-p",
                           "no:cacheprovider", "-p", "no:randomly"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)
    assert (folder / out).is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return folder / out


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory, crbench_data_dir):
    root = tmp_path_factory.mktemp("runs")
    base = run_bench(root / "base", crbench_data_dir, ["mydet:make"])
    both = run_bench(root / "cand", crbench_data_dir, ["mydet:make", "mydet:make_strict"])
    otherk = run_bench(root / "otherk", crbench_data_dir, ["mydet:make"], k=(3, 40))
    return base, both, otherk


def test_saved_files_carry_what_the_comparison_needs(saved_runs):
    base, _, _ = saved_runs
    (sample,) = samples_from_document(json.loads(base.read_text()))
    assert len(sample.keys) == 6 and sample.stars
    assert {"group", "exposure", "star_id"} <= set(sample.stars[0])


def test_crbench_compare_identical_runs_pass(saved_runs, capsys):
    base, both, _ = saved_runs
    rc = main(["compare", str(base), str(both), "--candidate-detector", "mydet:make",
               "--replicates", "200"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "mydet:make (r.json) vs mydet:make (r.json) on sim-tiny" in out
    assert "every score passes" in out and "WORSE" not in out


def test_crbench_compare_flags_a_regression(saved_runs, capsys, tmp_path):
    base, both, _ = saved_runs
    rc = main(["compare", str(base), str(both), "--candidate-detector", "mydet:make_strict",
               "--replicates", "200", "--json", str(tmp_path / "cmp.json")])
    captured = capsys.readouterr()
    assert rc == 1, captured.out
    assert "WORSE" in captured.out and "significant regression" in captured.err
    doc = json.loads((tmp_path / "cmp.json").read_text())
    assert doc["schema"] == "crbench-comparison/1"
    assert doc["bootstrap"]["replicates"] == 200 and doc["bootstrap"]["seed"] == 0
    assert "sim-tiny pixels full recall" in doc["regressions"]


def test_crbench_compare_refuses_other_settings(saved_runs, capsys):
    base, _, otherk = saved_runs
    rc = main(["compare", str(base), str(otherk)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "refusing to compare" in err and "settings.k" in err


def test_crbench_compare_needs_a_baseline_choice(saved_runs, capsys):
    _, both, _ = saved_runs
    assert main(["compare", str(both), str(both)]) == 2
    assert "--baseline-detector" in capsys.readouterr().err


def test_crbench_compare_names_a_broken_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["compare", str(bad), str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
