"""pytest hooks and options of pytest-crbench.

Nothing here imports numpy, astropy, torch or deepCR at load time: users who never pass
``--crbench`` pay nothing.  The science lives in plain modules (see the package docs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_crbench.bench.settings import OPTIONS
from pytest_crbench.pytest_plugin.state import SESSION_KEY, bench_session

__all__ = ["pytest_addoption", "pytest_configure", "pytest_generate_tests",
           "pytest_collection_modifyitems", "pytest_sessionfinish", "pytest_testnodedown",
           "pytest_terminal_summary"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crbench", "cosmic-ray detector benchmark (pytest-crbench)")
    group.addoption("--crbench", action="store_true", default=False,
                    help="run the cosmic-ray detector benchmark and its floors")
    for opt in OPTIONS:
        kwargs = dict(dest=opt.dest, default=None, help=opt.help)
        if opt.convert.__name__ == "_bool":
            kwargs.update(action="store_const", const=True)
        else:
            kwargs.update(action="append" if opt.repeat else "store", metavar=opt.metavar)
        group.addoption(opt.flag, **kwargs)
        parser.addini(f"crbench_{opt.name}", opt.help, default=None)


def _settings(config: pytest.Config):
    from pytest_crbench.bench.settings import read_tool_table, resolve

    inipath = config.inipath
    pyproject = inipath if inipath is not None and inipath.name == "pyproject.toml" \
        else config.rootpath / "pyproject.toml"
    tool = read_tool_table(pyproject)
    flags = {o.name: config.getoption(o.dest) for o in OPTIONS}
    ini = {o.name: config.getini(f"crbench_{o.name}") for o in OPTIONS}
    return resolve(flags, tool, ini, tool_file=pyproject if tool else None,
                   ini_file=inipath, cwd=Path(config.invocation_params.dir))


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("crbench"):
        return
    from pytest_crbench.errors import CRBenchError
    from pytest_crbench.bench.run import BenchSession

    try:
        config.stash[SESSION_KEY] = BenchSession(_settings(config))
    except CRBenchError as exc:
        raise pytest.UsageError(f"pytest-crbench: {exc}") from None
    # under pytest-xdist, keep each (detector, dataset) on one worker so it runs once
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    bench = bench_session(metafunc.config, required=False)
    names = {"crbench_detector_spec": "model", "crbench_dataset_name": "dataset"}
    for fixture, option in names.items():
        if fixture in metafunc.fixturenames:
            values = getattr(bench.settings, option) if bench else [None]
            metafunc.parametrize(fixture, values, indirect=True,
                                 ids=[str(v) for v in values] if bench else ["no-crbench"])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    bench = bench_session(config, required=False)
    if bench is None:
        return
    from pytest_crbench.pytest_plugin.items import CRBenchCollector

    collector = CRBenchCollector.from_parent(session, name="crbench", nodeid="crbench",
                                             bench=bench)
    for item in collector.collect():
        item.add_marker(pytest.mark.xdist_group(
            f"crbench|{item.check.detector}|{item.check.dataset}"))
        items.append(item)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session) -> None:
    bench = bench_session(session.config, required=False)
    if bench is None:
        return
    from pytest_crbench.reporting.outputs import write_masks, write_outputs

    try:
        bench.written = write_masks(bench)
        if _is_xdist_worker(session.config):
            import json

            session.config.workeroutput["crbench"] = json.dumps(
                bench.results.worker_record())
        else:
            bench.written += write_outputs(bench)
    finally:
        bench.close()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist controller: gather a worker's evaluations."""
    bench = bench_session(node.config, required=False)
    record = getattr(node, "workeroutput", {}).get("crbench")
    if bench is not None and record:
        import json

        bench.results.merge(json.loads(record))


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    bench = bench_session(config, required=False)
    if bench is None or not bench.results:
        return
    from pytest_crbench.reporting.terminal import summary_lines

    terminalreporter.write_sep("=", "crbench: cosmic-ray detector scores")
    for line in summary_lines(bench):
        terminalreporter.write_line(line)
