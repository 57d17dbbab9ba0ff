"""The HTML/Markdown report: files, content, atomicity, and rendering in a real browser."""

import base64
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from pytest_crbench.science.density import cr_fraction_per_second, density_relation, max_exposure_time
from pytest_crbench.errors import CRBenchDataError
from pytest_crbench.science.photometry import PHOT_DTYPE
from pytest_crbench.science.photometry_summary import photometry_summary
from pytest_crbench.reporting.html import write_report
from pytest_crbench.science.gallery import STAMP_KEYS, gallery_stamps
from pytest_crbench.science.stability import group_stability

PNG = b"\x89PNG\r\n\x1a\n"


def _stars(rng, n, cr_fraction):
    t = np.zeros(n, dtype=PHOT_DTYPE)
    t["star_id"] = np.arange(n)
    t["exposure"] = "e"
    t["flux_clean"] = 10 ** rng.uniform(3, 5.5, n)
    t["flux_err"] = np.sqrt(t["flux_clean"] + 500)
    t["area"] = rng.integers(17, 390, n)
    t["size_bin"] = np.where(t["area"] <= 50, "16-50",
                             np.where(t["area"] <= 200, "50-200", "200-400"))
    t["contaminated"] = rng.random(n) < 10 * cr_fraction
    hit = t["contaminated"]
    t["ratio_original"] = np.where(hit, 1 + rng.exponential(0.1, n), 1.0)
    t["ratio_cleaned"] = np.where(hit, 1 + rng.normal(0, 0.04, n), 1 + rng.normal(0, 0.003, n))
    t["ratio_cleaned"][0] = 0.4
    t["anomalous"] = np.abs(t["ratio_cleaned"] - 1) * t["flux_clean"] > 3 * t["flux_err"]
    return t


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(7)
    recs, stab = [], []
    for g in range(8):
        ratios = []
        for e in range(3):
            t = 400.0 + 150 * e + 50 * g
            f = 2.5e-5 * t * rng.uniform(0.8, 1.2)
            s = _stars(rng, 40, f)
            recs.append({"group": f"g{g}", "exposure": f"e{e}", "exptime": t,
                         "cr_fraction": f, "stars": s})
            ratios += list(s["ratio_cleaned"])
        stab.append({"group": f"g{g}", "date": f"{2010 + g}-03-01", "tp": 850 + 5 * g,
                     "fp": 120, "fn": 150, "ratios": ratios})
    stars = np.concatenate([r["stars"] for r in recs])
    dens = density_relation(recs)
    rate = cr_fraction_per_second(recs)
    clean = np.full((40, 40), 100.0)
    clean[20, 20] = 3000.0
    orig = clean.copy()
    orig[19, 21] += 2000.0
    cleaned = clean.copy()
    cleaned[20, 20] = 100.0
    return {
        "title": "crbench test report",
        "meta": {"dataset": "synthetic", "crbench": "0.1.0"},
        "table1": [{"detector": d, "dataset": "sim", "region": reg, "precision": p,
                    "recall": r, "f1": None, "f2": None}
                   for d in ("deepcr", "astroscrappy")
                   for reg, p, r in (("full", 0.95, 0.888), ("k3", 0.876, 0.855),
                                     ("k160", None, 0.562))],
        "stars": {"deepcr": stars},
        "photometry": {"deepcr": {"sim": photometry_summary(stars)}},
        "density": {"deepcr": dens},
        "cr_fraction_per_second": rate,
        "exposure_limits": [{"detector": "deepcr", "quantity": "anomalous", "level": 0.05,
                             "seconds": max_exposure_time(dens["anomalous"]["fit"], rate,
                                                          0.05)}],
        "stability": {"deepcr": group_stability(stab)},
        "gallery": [{"detector": "deepcr", "star_id": 3, "exposure": "e1", "group": "g2",
                     "x": 20.0, "y": 20.0, "radius": 3.0, "area": 30,
                     "ratio_cleaned": 0.41, "ratio_original": 1.6,
                     "stamps": gallery_stamps(orig, clean, cleaned, 20.0, 20.0)}],
    }


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    return write_report(d, results)


def test_files_and_self_contained_html(report):
    html_path, md_path = report
    assert html_path.name == "report.html" and md_path.name == "report.md"
    html = html_path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) == 5  # Fig. 3, Fig. 6, Fig. 7, Fig. 8, one gallery row
    assert all(base64.b64decode(i).startswith(PNG) for i in imgs)
    # nothing fetched from anywhere: no external src/href other than in-page anchors
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    figs = sorted(p.name for p in (html_path.parent / "figures").iterdir())
    assert figs == ["fig3_flux_ratio.png", "fig6_density.png", "fig7_f1_f2.png",
                    "fig8_rms.png", "gallery_00.png"]
    leftovers = [p.name for p in html_path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_html_content(report, results):
    html = report[0].read_text(encoding="utf-8")
    assert "<title>crbench test report</title>" in html
    for text in ("Table 1", "deepcr", "astroscrappy", "88.8", "95.0", "&gt; 160×RMS",
                 "Fig. 3", "Fig. 6", "Fig. 7", "Fig. 8", "Failure gallery",
                 "F_cleaned/F_clean = 0.410", "Pearson r", "mean ± 3σ", "2017-03-01"):
        assert text in html, text
    # an undefined precision shows as a dash, not 0
    row = re.search(r"<tr><td>&gt; 160×RMS</td>(.*?)</tr>", html).group(1)
    assert "—" in row and "0.0" not in row


def test_markdown_summary(report, results):
    md = report[1].read_text(encoding="utf-8")
    assert md.startswith("# crbench test report")
    assert "| region | deepcr recall % | deepcr precision % |" in md
    assert "| full image | 88.8 | 95.0 | 88.8 | 95.0 |" in md
    assert "![Fig. 3" in md and "(figures/fig3_flux_ratio.png)" in md
    rate = results["cr_fraction_per_second"]
    assert f"{rate:.3g} /s" in md
    stab = results["stability"]["deepcr"]
    assert f"{100 * stab['f1']['mean']:.1f}" in md


def test_empty_results_still_render(tmp_path):
    h, m = write_report(tmp_path, {})
    html = h.read_text(encoding="utf-8")
    assert "No pixel scores" in html and "No anomalous star" in html
    assert "data:image/png" not in html
    assert m.read_text().startswith("# pytest-crbench report")


def test_rewrite_is_atomic_and_failure_keeps_old_report(tmp_path, results):
    h, _ = write_report(tmp_path, {"title": "first"})
    assert "first" in h.read_text()
    bad = dict(results, gallery=[{"detector": "x", "stamps": {"original": np.zeros((3, 3))}}])
    with pytest.raises(CRBenchDataError, match="stamps"):
        write_report(tmp_path, bad)
    assert "first" in h.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "report.html",
                                                          "report.md"]
    with pytest.raises(CRBenchDataError, match="must be a dict"):
        write_report(tmp_path, [1, 2])


def test_gallery_stamps_values_and_edges():
    rng = np.random.default_rng(0)
    orig, clean, cleaned = (rng.normal(0, 1, (30, 40)) for _ in range(3))
    s = gallery_stamps(orig, clean, cleaned, 10.4, 12.6, half=5)
    assert list(s) == list(STAMP_KEYS)
    assert all(v.shape == (11, 11) for v in s.values())
    np.testing.assert_array_equal(s["original"], orig[8:19, 5:16])
    np.testing.assert_allclose(s["original_minus_clean"], orig[8:19, 5:16] - clean[8:19, 5:16])
    np.testing.assert_allclose(s["abs_clean_minus_cleaned"],
                               np.abs(clean[8:19, 5:16] - cleaned[8:19, 5:16]))
    edge = gallery_stamps(orig, clean, cleaned, 1, 1, half=3)
    assert np.isnan(edge["clean"][:2]).all() and np.isnan(edge["clean"][:, :2]).all()
    assert edge["clean"][3, 3] == clean[1, 1]
    with pytest.raises(CRBenchDataError, match="off the"):
        gallery_stamps(orig, clean, cleaned, 100, 1)
    with pytest.raises(CRBenchDataError, match="one shape"):
        gallery_stamps(orig, clean[:5], cleaned, 1, 1)


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run_chromium(binary, args, url, timeout=120):
    profile = tempfile.mkdtemp(prefix="crbench-chromium-")
    try:
        return subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args, url],
            capture_output=True, timeout=timeout, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_page_renders_in_a_real_browser(report, tmp_path):
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium/chrome binary on PATH")
    html = report[0].read_text(encoding="utf-8")
    # a copy of the page that reports, after load, how many images decoded
    probe = ("<script>window.addEventListener('load',function(){var im=document.images,"
             "ok=0;for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>100)"
             "ok++;}var p=document.createElement('p');p.id='probe';p.textContent="
             "'images '+ok+'/'+im.length;document.body.appendChild(p);});</script>")
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", probe + "</body>"), encoding="utf-8")
    dom = _run_chromium(binary, ["--dump-dom", "--virtual-time-budget=5000"], page.as_uri())
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    assert "images 5/5" in dom.stdout.decode(errors="replace")
    shot = tmp_path / "shot.png"
    out = _run_chromium(binary, [f"--screenshot={shot}", "--window-size=1200,2400"],
                        report[0].as_uri())
    assert out.returncode == 0 and shot.exists()
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[0] == 2400 and pixels.shape[1] == 1200
    assert pixels[..., :3].std() > 0.05  # not a blank page


def test_comparison_table_gives_the_stability_rms_as_it_is():
    """Fractions are shown in % and their differences in percentage points; the
    stability RMS of flux ratios (a number like 0.011) is shown as it is."""
    from pytest_crbench.reporting import html as report_html

    def diff(kind, part, metric, cand, base, delta, interval):
        return {"candidate": "new", "baseline": "old", "dataset": "sim", "kind": kind,
                "part": part, "metric": metric, "candidate_value": cand,
                "baseline_value": base, "delta": {"value": delta, "interval": interval},
                "verdict": "same"}

    diffs = [diff("pixels", "full", "recall", 0.9, 0.88, 0.02, [0.01, 0.03]),
             diff("stability", "k3", "rms", 0.0108, 0.0121, -0.0013, [-0.003, 0.0004])]

    class Page:
        tables = []

        def section(self, *a): pass

        def para(self, *a): pass

        def figure(self, *a): pass

        def table(self, headers, rows, caption=""):
            self.tables.append(rows)

    page = Page()
    report_html._section_comparison(page, {"comparison": {"baseline": "old", "max_drop": 0.02,
                                                          "differences": diffs}})
    pixels, stability = page.tables[0]
    assert pixels[5:8] == ["90.0", "88.0", "+2.0 [+1.0, +3.0]"]
    assert stability[5:8] == ["0.0108", "0.0121", "-0.0013 [-0.0030, +0.0004]"]
