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
           "pytest_collection_modifyitems", "pytest_sessionfinish", "pytest_terminal_summary",
           "RunWatcher"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crbench", "cosmic-ray detector benchmark (pytest-crbench)")
    group.addoption("--crbench", action="store_true", default=False,
                    help="run the cosmic-ray detector benchmark and its floors")
    for opt in OPTIONS:
        group.addoption(opt.flag, **opt.argparse_kwargs(opt.dest))
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
    from pytest_crbench.bench.preflight import preflight
    from pytest_crbench.bench.run import BenchSession
    from pytest_crbench.detectors.specs import check_spec
    from pytest_crbench.errors import CRBenchError

    try:
        settings = _settings(config)
        for spec in settings.detectors:
            check_spec(spec)  # one usage error now, not one failure per item
        bench = BenchSession(settings, notify=_notifier(config))
        preflight(bench)
    except CRBenchError as exc:
        raise pytest.UsageError(f"pytest-crbench: {exc}") from None
    config.stash[SESSION_KEY] = bench
    config.pluginmanager.register(RunWatcher(bench, worker=_is_xdist_worker(config)),
                                  "crbench-run-watcher")
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
    if bench.settings.benchmark:
        from pytest_crbench.pytest_plugin.inference_benchmark import benchmark_items

        items.extend(benchmark_items(session))


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _notifier(config: pytest.Config):
    """A function writing one line to the terminal now, even while output is captured
    (an item waiting for a cache lock says so at once).  pytest-xdist workers have no
    terminal: their lines go to stderr."""
    def notify(message: str) -> None:
        import contextlib
        import sys

        reporter = config.pluginmanager.getplugin("terminalreporter")
        if reporter is None or _is_xdist_worker(config):
            print(message, file=sys.stderr, flush=True)
            return
        capman = config.pluginmanager.getplugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            reporter.write_line(message)

    return notify


class RunWatcher:
    """How the session ends (see :mod:`pytest_crbench.bench.completion`), and under
    pytest-xdist the results streamed from the workers with their test reports: the
    controller holds every completed (detector, dataset) even if a worker crashes."""

    def __init__(self, bench, *, worker: bool) -> None:
        self.bench = bench
        self.worker = worker
        self.stopped: str | None = None
        self.crashed: dict[str, str] = {}  # worker id -> what happened, one line

    def pytest_keyboard_interrupt(self, excinfo) -> None:
        value = excinfo.value
        self.stopped = getattr(value, "msg", None) or str(value) or excinfo.typename

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if self.worker:
            record = self.bench.results.new_record()
            if record is not None:
                import json

                report.crbench_record = json.dumps(record)
        return report

    def pytest_runtest_logreport(self, report) -> None:
        record = getattr(report, "crbench_record", None)
        if record and not self.worker:
            import json

            self.bench.results.merge(json.loads(record))
        longrepr = report.longrepr
        if report.failed and isinstance(longrepr, str) and "crashed while running" in longrepr:
            worker = getattr(getattr(report, "node", None), "gateway", None)
            self.crashed[getattr(worker, "id", longrepr)] = longrepr

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        if error:
            self.crashed.setdefault(node.gateway.id,
                                    f"worker {node.gateway.id!r} went down: {error}")

    def end(self, session: pytest.Session, exitstatus):
        """The :class:`~pytest_crbench.bench.completion.RunEnd` of ``session``."""
        from pytest_crbench.bench.completion import RunEnd

        stopped = self.stopped or session.shouldstop or session.shouldfail or None
        return RunEnd(int(exitstatus), stopped if isinstance(stopped, str) else None,
                      list(self.crashed.values()))


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    bench = bench_session(session.config, required=False)
    if bench is None:
        return
    from pytest_crbench.reporting.outputs import write_masks, write_outputs

    watcher = session.config.pluginmanager.get_plugin("crbench-run-watcher")
    end = watcher.end(session, exitstatus)
    try:
        bench.written = write_masks(bench, end)
        if not _is_xdist_worker(session.config):
            bench.written += write_outputs(bench, end)
    finally:
        bench.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    bench = bench_session(config, required=False)
    if bench is None:
        return
    if not bench.results:
        for line in bench.written:  # e.g. "the run was interrupted: no output written"
            terminalreporter.write_line(line)
        return
    from pytest_crbench.reporting.terminal import summary_lines

    terminalreporter.write_sep("=", "crbench: cosmic-ray detector scores")
    for line in summary_lines(bench):
        terminalreporter.write_line(line)
