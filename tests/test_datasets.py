"""Dataset names, smoke-only datasets and out-of-domain notes."""

import pytest

from conftest import make_group
from pytest_crbench.datasets.loading import available, domain_note, is_scored, load_dataset
from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.science.exposures import Dataset


def test_scored_and_smoke_only_datasets():
    assert is_scored("sim") and is_scored("sim-tiny") and is_scored("stis-crsplit")
    assert not is_scored("wfpc2-smoke") and not is_scored("hrc-smoke")
    assert {"sim", "sim-full", "stis-crsplit", "hrc-smoke"} <= set(available())


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(CRBenchConfigError, match=r"unknown dataset 'nope'.*available: .*sim"):
        load_dataset("nope", data_dir=tmp_path)


class TrainedOn:
    """A detector that declares the data it was trained on."""

    name, version, threshold = "trained", "1", None

    def __init__(self, domain):
        self.domain = domain

    def detect(self, image, ignore, exposure):
        return image > 1e9


def test_domain_note_names_model_domain_and_data():
    ds = Dataset("acs", [make_group(2)])  # exposures are ACS/WFC
    assert domain_note(TrainedOn(("ACS", "WFC")), ds) is None
    assert domain_note(TrainedOn(()), ds) is None
    note = domain_note(TrainedOn(("STIS", "CCD")), ds)
    assert note.startswith("trained was trained on STIS/CCD data; acs is ACS/WFC: out of")
