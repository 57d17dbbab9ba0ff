"""``crbench compare BASE.json CANDIDATE.json``: paired comparison of two saved runs.

Both files are results JSON written by ``--crbench-json``.  The baseline is the detector
of BASE.json (``--baseline-detector`` picks one where the file holds several), the
candidates every detector of CANDIDATE.json (or ``--candidate-detector``).  The files
must have been made on the same data and settings: every provenance section both files
carry is compared (dataset versions, seeds and file hashes, k list, fill method,
threshold, reference settings …) except who ran them, when and with which detectors;
the first differences are named and nothing is compared.  Then, per dataset the two
files share, :func:`pytest_crbench.bench.comparison.compare_samples` on the per-exposure
counts and the star rows of the two files.

Exit status: 0 no significant regression; 1 a pixel score or photometric fraction whose
whole paired interval of candidate − baseline lies below ``−max_drop`` (the
non-inferiority rule of ``--crbench-baseline``); 2 the files cannot be compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from pytest_crbench.errors import CRBenchConfigError


def load_results(path: str | Path) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CRBenchConfigError(f"results file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise CRBenchConfigError(f"results file {path}: not a readable JSON file ({exc})") \
            from None
    schema = doc.get("schema", "") if isinstance(doc, dict) else ""
    if not str(schema).startswith("crbench-results/"):
        raise CRBenchConfigError(f"results file {path}: not a pytest-crbench results file "
                                 f"(schema {schema!r})")
    if str(schema) == "crbench-results/1":
        raise CRBenchConfigError(f"results file {path}: schema crbench-results/1 has no star "
                                 "rows; rerun with a newer pytest-crbench")
    return doc


def _pick(samples, wanted: str | None, path: Path, role: str, flag: str) -> list:
    names = list(dict.fromkeys(s.detector for s in samples))
    if not names:
        raise CRBenchConfigError(f"{role} file {path}: no per-exposure scores")
    if wanted is not None:
        if wanted not in names:
            raise CRBenchConfigError(f"{role} file {path}: no detector {wanted!r} (it holds "
                                     f"{', '.join(names)})")
        names = [wanted]
    elif role == "baseline" and len(names) > 1:
        raise CRBenchConfigError(f"baseline file {path} holds {len(names)} detectors "
                                 f"({', '.join(names)}): choose one with {flag}")
    return [s for s in samples if s.detector in names]


def compare_files(base_path: str | Path, cand_path: str | Path, *,
                  baseline_detector: str | None = None,
                  candidate_detector: str | None = None, config=None) -> list:
    """The :class:`~pytest_crbench.bench.comparison.Difference` rows of two saved runs."""
    from pytest_crbench.bench.comparison import check_comparable, compare_samples
    from pytest_crbench.bench.intervals import samples_from_document
    from pytest_crbench.science.bootstrap import BootstrapConfig

    base_path, cand_path = Path(base_path), Path(cand_path)
    base_doc, cand_doc = load_results(base_path), load_results(cand_path)
    base = _pick(samples_from_document(base_doc), baseline_detector, base_path, "baseline",
                 "--baseline-detector")
    cand = _pick(samples_from_document(cand_doc), candidate_detector, cand_path,
                 "candidate", "--candidate-detector")
    shared = [d for d in dict.fromkeys(s.dataset for s in base)
              if any(c.dataset == d for c in cand)]
    if not shared:
        raise CRBenchConfigError(
            f"{base_path} (datasets {sorted({s.dataset for s in base})}) and {cand_path} "
            f"(datasets {sorted({s.dataset for s in cand})}) share no dataset")
    check_comparable(base_doc, cand_doc, base_name=str(base_path), cand_name=str(cand_path),
                     datasets=shared)
    config = config or BootstrapConfig()
    out = []
    for ds in shared:
        b = next(s for s in base if s.dataset == ds)
        for c in (s for s in cand if s.dataset == ds):
            if c.detector == b.detector:  # one spec, two versions: name them apart
                out += compare_samples(replace(c, detector=f"{c.detector} ({cand_path.name})"),
                                       replace(b, detector=f"{b.detector} ({base_path.name})"),
                                       config)
            else:
                out += compare_samples(c, b, config)
    return out


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="paired comparison of two saved results files",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", metavar="BASE.json")
    p.add_argument("candidate", metavar="CANDIDATE.json")
    p.add_argument("--baseline-detector", metavar="SPEC",
                   help="the baseline detector where BASE.json holds several")
    p.add_argument("--candidate-detector", metavar="SPEC",
                   help="compare only this detector of CANDIDATE.json")
    p.add_argument("--max-drop", type=float, default=None, metavar="M",
                   help="non-inferiority tolerance (default 0.02, as --crbench-max-drop)")
    p.add_argument("--replicates", type=int, default=1000, metavar="N",
                   help="bootstrap replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--confidence", type=float, default=0.95, metavar="C",
                   help="confidence of the paired intervals (default 0.95)")
    p.add_argument("--json", metavar="PATH", help="also write the comparison as JSON")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    from pytest_crbench.bench.comparison import DEFAULT_MAX_DROP, regressions
    from pytest_crbench.bench.intervals import bootstrap_meta
    from pytest_crbench.reporting.statistics import comparison_lines
    from pytest_crbench.science.bootstrap import BootstrapConfig

    max_drop = DEFAULT_MAX_DROP if args.max_drop is None else args.max_drop
    try:
        if not 0 <= max_drop <= 1:
            raise CRBenchConfigError(f"--max-drop: expected a number from 0 to 1, got "
                                     f"{max_drop}")
        try:
            config = BootstrapConfig(args.replicates, args.seed, args.confidence)
        except ValueError as exc:
            raise CRBenchConfigError(str(exc)) from None
        diffs = compare_files(args.baseline, args.candidate,
                              baseline_detector=args.baseline_detector,
                              candidate_detector=args.candidate_detector, config=config)
    except CRBenchConfigError as exc:
        print(f"crbench compare: {exc}", file=sys.stderr)
        return 2
    for line in comparison_lines(diffs, max_drop=max_drop, confidence=config.confidence):
        print(line)
    bad = regressions(diffs, max_drop)
    if args.json:
        from pytest_crbench.bench.records import jsonable
        from pytest_crbench.bench.results import write_json

        write_json(Path(args.json), jsonable({
            "schema": "crbench-comparison/1", "baseline_file": str(args.baseline),
            "candidate_file": str(args.candidate), "max_drop": max_drop,
            "bootstrap": bootstrap_meta(config),
            "differences": [d.as_dict() for d in diffs],
            "regressions": [d.label for d in bad]}))
    if bad:
        print(f"crbench compare: significant regression beyond {max_drop:g} in {len(bad)} "
              "score(s)", file=sys.stderr)
        return 1
    return 0


__all__ = ["compare_files", "load_results", "cmd_compare"]
