"""Whether a run completed, and so whether its outputs may replace the previous ones.

The outputs of a run (results JSON, report, generated floors, mask files) are written
once at the end, each atomically, and only when the run is worth them:

``complete``
    pytest ended with exit status 0 (all passed), 1 (some failed) or 5 (nothing
    collected) and nothing asked it to stop early: every output is written.
``interrupted``
    Ctrl-C (``KeyboardInterrupt``), ``-x`` / ``--maxfail``, ``pytest.exit()``, or an
    exit status 2, 3 or 4: nothing is written and the previous files stay as they were
    (a partial floors file would silently weaken the gate), and the terminal says so.
``crashed``
    a pytest-xdist worker died (segfault, out of memory, ``os._exit``): the results of
    the (detector, dataset) pairs that completed are written to the JSON and the report,
    marked ``"complete": false`` with the crash named in ``"incomplete"``; generated
    floors are not written (they must cover the whole configuration).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RunEnd", "COMPLETE", "INTERRUPTED", "CRASHED"]

COMPLETE, INTERRUPTED, CRASHED = "complete", "interrupted", "crashed"
#: pytest exit statuses of a session that ran to its end (OK, TESTS_FAILED, NO_TESTS_COLLECTED)
_FINISHED = (0, 1, 5)


@dataclass
class RunEnd:
    """How the pytest session ended, as far as the outputs are concerned."""

    exitstatus: int = 0
    #: why the session stopped early (``"KeyboardInterrupt"``, ``"stopping after 1
    #: failures"``, a ``pytest.exit`` message), or None
    stopped: str | None = None
    #: one line per crashed pytest-xdist worker
    crashed: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        if self.crashed:
            return CRASHED
        if self.stopped or int(self.exitstatus) not in _FINISHED:
            return INTERRUPTED
        return COMPLETE

    @property
    def reason(self) -> str:
        if self.crashed:
            more = len(self.crashed) - 1
            return self.crashed[0] + (f"; and {more} more worker crash(es)" if more else "")
        return self.stopped or f"exit status {int(self.exitstatus)}"
