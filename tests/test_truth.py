"""Truth classes from CRTRUTH and the per-region audit of the reference."""

import numpy as np
import pytest

from conftest import make_group
from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.science.exposures import Exposure
from pytest_crbench.science.reference import ReferenceConfig, build_reference
from pytest_crbench.science.truth import audit_reference, pooled_audit, truth_classes


def test_truth_classes_split_charge_by_its_significance():
    sci = np.full((4, 4), 100.0, np.float32)
    charge = np.zeros((4, 4), np.float32)
    charge[0, 0], charge[1, 1], charge[2, 2] = 1000.0, 20.0, 55.0
    sci += charge
    exp = Exposure("e", sci, np.zeros((4, 4)), 100.0, crtruth=charge, read_noise=0.0)
    t = truth_classes(exp, 5.0)  # noise = sqrt(100) = 10 e-: the line is at 50 e-
    assert t.crmask[0, 0] and t.crmask[2, 2] and not t.crmask[1, 1]
    assert t.excluded[1, 1] and t.excluded.sum() == 1
    assert not (t.crmask & t.excluded).any()
    assert truth_classes(exp, 6.0).excluded[2, 2]  # 55 e- < 60 e-
    assert t.label() == "CRTRUTH > 5 sigma"
    assert truth_classes(Exposure("r", sci, np.zeros((4, 4)), 1.0)) is None
    with pytest.raises(CRBenchConfigError, match="truth_snr"):
        truth_classes(exp, 0)


def test_audit_per_region_pools_to_the_full_image():
    group = make_group(4, seed=3)
    ref = build_reference(group, ReferenceConfig())
    # two regions that split the image: their counts add up to the full image's
    top = [np.zeros(exp.shape, np.int16) for exp in group.exposures]
    for t in top:
        t[: t.shape[0] // 2] = 1
    rows = audit_reference(group, ref, top, ks=(1,))
    assert {r["region"] for r in rows} == {"full", "k1"}
    assert all(r["truth"] == "CRTRUTH > 5 sigma" for r in rows)
    bottom = audit_reference(group, ref, [1 - t for t in top], ks=(1,))
    full, top, bottom = (pooled_audit(rows), pooled_audit(rows, "k1"),
                         pooled_audit(bottom, "k1"))
    assert pooled_audit(audit_reference(group, ref)) == full
    for key in ("tp", "fp", "fn", "tp_significant", "fn_significant"):
        assert full[key] == top[key] + bottom[key]
    assert full["n_exposures"] == 4
    # the strong injected hits (800-4000 e-) are all significant and found
    assert full["recall_significant"] > 0.97
    assert full["recall"] <= full["recall_significant"]


def test_audit_is_empty_without_truth():
    group = make_group(3)
    for exp in group.exposures:
        exp.crtruth = None
    assert audit_reference(group, build_reference(group)) == []
