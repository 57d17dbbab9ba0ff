"""Benchmark-suite switches (this repository's benchmarks, not plugin options)."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--archive", action="store_true", default=False,
                     help="run the archive-scale benchmarks of benchmarks/test_archive.py "
                          "(sim-full and sim-csst on LocalClusters: tens of minutes, GBs)")


def pytest_configure(config):
    config.addinivalue_line("markers", "archive: archive-scale benchmark (runs with --archive)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--archive"):
        return
    skip = pytest.mark.skip(reason="archive-scale benchmark: pass --archive")
    for item in items:
        if "archive" in item.keywords:
            item.add_marker(skip)
