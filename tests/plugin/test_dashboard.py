"""The history's static site (history/dashboard.py) on synthetic histories: 40 nights on one
box with a TPOT step planted at night 20, where CANN changes too, and a second box of another
card with a few runs that do not say their CANN. Every link and image of every page resolves
to a file, the front page names the step and what changed, the box page marks it, and run
data is escaped. And 300 nights stay readable and quick."""

import math
import random
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from pytest_ascend.history.dashboard import box_charts, box_page, chart_figure, write_dashboard
from pytest_ascend.history.gate import build_history
from pytest_ascend.history.runs import UNKNOWN_BOX, Run, box_name

DECODE = "tests/perf/test_single_request.py::test_decode"
PREFILL = "tests/perf/test_single_request.py::test_prefill"
NOISE = 0.02
TELEMETRY = {"samples": 12, "seconds": 11.5,
             "power_w": {"min": 280.0, "median": 301.5, "max": 310.0},
             "temperature_c": {"min": 50.0, "median": 55.0, "max": 58.0},
             "core_clock_mhz": {"min": 1800.0, "median": 1800.0, "max": 1800.0},
             "memory_clock_mhz": None, "energy_j": 3467.0, "throttled": False,
             "clock_drop": 0.0, "throttle_reasons": [], "card": 0}


def night(index, *, node="atlas-01", device="Ascend910B3", cann="8.0.RC3", tpot=10.0,
          rng=None, telemetry=None):
    """One nightly run: a decode benchmark (tpot_ms, ttft_ms) and a prefill one (time)."""
    rng = rng or random.Random(index)
    ascend = {"device_kind": "npu", "device_name": device, "model": "Qwen2.5-14B-Instruct",
              "dtype": "float16", "smoke": False, "driver": "24.1.rc2"}
    if cann is not None:
        ascend["cann"] = cann
    decode_extra = {"tpot_ms": tpot * math.exp(rng.gauss(0, NOISE)),
                    "ttft_ms": 80.0 * math.exp(rng.gauss(0, NOISE))}
    if telemetry is not None:
        decode_extra["telemetry"] = telemetry
    benches = [{"name": "test_decode", "fullname": DECODE, "stats": {"median": 1.0},
                "extra_info": decode_extra},
               {"name": "test_prefill", "fullname": PREFILL,
                "stats": {"median": 0.25 * math.exp(rng.gauss(0, NOISE))}, "extra_info": {}}]
    day = f"2026-{1 + index // 28:02d}-{1 + index % 28:02d}T02:00:00"
    return Run(f"/store/{node}/run-{index:03d}.json", day, {"node": node, "ascend": ascend},
               benches)


def synthetic_history():
    """atlas-01: 40 nights, TPOT 10 ms -> 13 ms at night 20 with CANN 8.0.RC3 -> 8.1.RC1.
    atlas-02 (another card, so another context): 8 nights, the last 3 without a CANN."""
    rng = random.Random(7)
    runs = [night(i, cann="8.0.RC3" if i < 20 else "8.1.RC1", tpot=10.0 if i < 20 else 13.0,
                  rng=rng, telemetry=TELEMETRY if i == 39 else None) for i in range(40)]
    runs += [night(100 + i, node="atlas-02", device="Ascend910B4",
                   cann="8.0.RC3" if i < 5 else None, rng=rng) for i in range(8)]
    return build_history(runs, metrics=("time", "tpot_ms", "ttft_ms"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    history = synthetic_history()
    out = tmp_path_factory.mktemp("site") / "dashboard"
    pages = write_dashboard(history, out, ["test_x in run-007.json set aside: throttled"])
    return history, out, pages


class Page(HTMLParser):
    """A page's links, image sources, ids and text, as a browser would read them."""

    def __init__(self, path: Path):
        super().__init__()
        self.links, self.images, self.ids, self.tags, self.text = [], [], set(), [], []
        self.alts = []
        self.in_style = False
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.in_style = tag == "style"
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs.get("src"))
            self.alts.append(attrs.get("alt"))

    def handle_endtag(self, tag):
        self.in_style = self.in_style and tag != "style"

    def handle_data(self, data):
        if not self.in_style:
            self.text.append(data)

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def test_the_front_page_links_both_boxes_and_every_page_is_written(site):
    _, out, pages = site
    assert pages[0] == out / "index.html"
    assert sorted(pages[1:]) == sorted([out / box_page("atlas-01"), out / box_page("atlas-02")])
    front = Page(pages[0])
    assert {box_page("atlas-01"), box_page("atlas-02")} <= {urlsplit(u).path
                                                            for u in front.links}
    assert not list(out.rglob(".*.tmp"))


def test_every_link_and_image_resolves_within_the_site(site):
    _, out, pages = site
    checked = 0
    for page_path in out.glob("*.html"):
        page = Page(page_path)
        for url in [*page.links, *page.images]:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, f"{page_path.name}: {url} leaves"
            target = (page_path.parent / unquote(parts.path)) if parts.path else page_path
            assert target.is_file(), f"{page_path.name}: {url} -> nothing"
            if parts.fragment:
                assert parts.fragment in Page(target).ids, f"{page_path.name}: {url} no anchor"
            checked += 1
        for src in page.images:
            assert (page_path.parent / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert checked >= 10


def test_the_front_page_shows_the_step_with_the_cann_change_and_the_gate(site):
    history, out, _ = site
    (step,) = history.steps.steps
    assert (step.metric, step.after.source) == ("tpot_ms", "/store/atlas-01/run-020.json")
    text = Page(out / "index.html").plain
    regressions, improvements = text.split("Improvements", 1)
    assert f"{step.change:+.1%} [{step.ratio_low - 1:+.1%}, {step.ratio_high - 1:+.1%}]" in \
        regressions
    assert "last before: run-019.json (2026-01-20T02:00:00) on atlas-01" in regressions
    assert "first after: run-020.json (2026-01-21T02:00:00) on atlas-01" in regressions
    assert "ascend.cann 8.0.RC3 → 8.1.RC1" in regressions
    (gate,) = history.regressions
    assert f"8.1.RC1 vs 8.0.RC3 {gate.change:+.1%} regression {gate.reason()}" in regressions
    assert "Steps along the nights: 0" in improvements


def test_the_box_page_charts_the_moved_metric_and_marks_the_step(site):
    history, out, _ = site
    (step,) = history.steps.steps
    page = Page(out / box_page("atlas-01"))
    # test_decode's time, tpot_ms and ttft_ms, test_prefill's time: a sparkline each, and a
    # chart of the one that moved, with its step and the gate's regression beside it
    assert page.tags.count("svg") == 4 and {"time (ms)", "tpot_ms", "ttft_ms"} <= set(page.text)
    assert page.alts == ["tpot_ms of test_decode on atlas-01: 40 runs"]
    assert step.describe() in page.plain and "Moved here: tpot_ms of test_decode" in page.plain
    assert "8.1.RC1 vs 8.0.RC3" in page.plain.split(step.describe(), 1)[1]
    telemetry = page.plain.split("Telemetry of the newest run (run-039.json):", 1)[1]
    assert telemetry.startswith(" card 0 min median max power_w 280 302 310 temperature_c 50 "
                                "55 58 core_clock_mhz 1800 1800 1800 samples 12 seconds 11.5 "
                                "memory_clock_mhz not read energy_j 3467 throttled False ")
    charts = {(c.benchmark, c.metric): c for c in box_charts(history, "atlas-01")}
    tpot = charts[(DECODE, "tpot_ms")]
    assert [(position, s.after.source) for position, s in tpot.steps] == [(20, step.after.source)]
    assert tpot.boundaries == [(0, "8.0.RC3"), (20, "8.1.RC1")]
    assert charts[(DECODE, "ttft_ms")].steps == [] and len(tpot.runs) == 40
    figure = chart_figure(tpot)
    assert f" {step.change:+.1%}" in [t.get_text() for t in figure.axes[0].texts]


def test_runs_without_a_cann_are_counted_and_named(site):
    history, out, _ = site
    assert history.unknown_runs == 3
    text = Page(out / "index.html").plain
    assert "Runs that do not say their ascend.cann: 3" in text
    unknown = [run for ctx in history.contexts for run in ctx.runs.get("unknown", ())]
    assert [run.source.rsplit("/", 1)[1] for run in unknown] == \
        ["run-105.json", "run-106.json", "run-107.json"]
    for run in unknown:
        assert f"{run.source.rsplit('/', 1)[1]} ({run.datetime}) on atlas-02" in text
    assert "set aside: throttled" in text
    assert "no telemetry recorded" in Page(out / box_page("atlas-02")).plain


def test_run_data_is_escaped_everywhere(tmp_path):
    evil = "<script>alert('x')</script>&<b>"
    # TPOT doubles with the version: charted, its versions drawn as text by matplotlib
    runs = [night(i, node=evil, cann=f"8.{i // 4}<i>$x^$", tpot=10.0 if i < 4 else 20.0)
            for i in range(8)]
    for run in runs:
        run.benchmarks[0]["fullname"] = f"{DECODE}[{evil}]"
    pages = write_dashboard(build_history(runs, metrics=("tpot_ms",)), tmp_path,
                            [f"a note {evil}"])
    assert len(pages) == 2 and pages[1].name.startswith("box-script_alert_x_script_b-")
    assert len(list((tmp_path / "charts").glob("*.png"))) == 1
    for path in pages:
        source = path.read_text(encoding="utf-8")
        page = Page(path)
        assert "script" not in page.tags and "b" not in page.tags and "i" not in page.tags
        assert "<script>" not in source and "&lt;script&gt;alert(&#x27;x&#x27;)" in source
        assert evil in page.plain
    assert "8.1<i>$x^$ vs 8.0<i>$x^$" in Page(pages[1]).plain


def test_a_run_without_a_host_is_on_the_unknown_host(tmp_path):
    run = night(1)
    del run.machine_info["node"]
    assert box_name(run) == UNKNOWN_BOX and box_name(night(2, node="  ")) == UNKNOWN_BOX
    pages = write_dashboard(build_history([run], metrics=("tpot_ms",)), tmp_path / "new")
    assert [p.name for p in pages] == ["index.html", box_page(UNKNOWN_BOX)]
    text = Page(pages[1]).plain
    assert "Box unknown host 1 run(s) with figures, 1 series" in text
    assert "Nothing moved here." in text and "(run-001.json): no telemetry recorded" in text


def nightly_runs(count=300, groups=15, metrics=10):
    rng = random.Random(0)
    names = [f"metric_{i}_ms" for i in range(metrics)]
    runs = []
    for index in range(count):
        number = index * groups // count
        run = night(index, cann=f"8.{number}.RC{1 + number % 3}-build.{number:03d}", rng=rng)
        run.benchmarks[0]["extra_info"].update(
            {m: (13.0 if m == "metric_3_ms" and index >= 200 else 10.0)
             * math.exp(rng.gauss(0, NOISE)) for m in names})
        runs.append(run)
    return runs, names


def test_300_nights_of_50_metrics_are_labelled_without_overlap_and_quick(tmp_path):
    runs, names = nightly_runs(metrics=50)
    history = build_history(runs, metrics=names)
    started = time.perf_counter()
    pages = write_dashboard(history, tmp_path)
    elapsed = time.perf_counter() - started
    assert len(pages) == 2 and len(list((tmp_path / "charts").glob("*.png"))) == 1
    assert Page(pages[1]).tags.count("svg") == 50
    assert elapsed < 5.0, f"{elapsed:.1f} s"
    charts = {c.metric: c for c in box_charts(history, "atlas-01")}
    assert [position for position, _ in charts["metric_3_ms"].steps] == [200]
    figure = chart_figure(charts["metric_3_ms"])
    renderer = figure.canvas.get_renderer()
    (below,) = figure.axes
    for ax in (below, *below.child_axes):  # the dates below, the versions above
        boxes = [label.get_window_extent(renderer) for label in ax.get_xticklabels()
                 if label.get_visible() and label.get_text()]
        assert len(boxes) >= 3
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
        assert all(0 <= box.x0 and box.x1 <= figure.bbox.width for box in boxes)
