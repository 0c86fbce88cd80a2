"""The report takes whatever a results file holds: generated runs (uneven rounds, missing
metrics, NaN, failed rounds, empty histograms, undescribed environments, lost requests)
render without an exception and without a figure left out because drawing it raised; a
real run that once crashed the report renders; the summary is usable on a laptop; a
latency percentile at the driver's timeout reads as lost requests."""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.driver.histogram import empty, encode
from bench.report.render import build_page, render_report
from bench.report.tables import fmt_rtt
from bench.results.run import Run
from bench.results.schema import validate

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runs"
# A real run whose claim figure once raised (an interval that did not contain its point)
# and whose load rows lost requests at the 0.2 s reply timeout.
CRASH_RUN = FIXTURES / "crash-negative-interval-lost-replies"
IMPLS = json.loads((CRASH_RUN / "results.json").read_text())["impls"]
NAMES = ("blocking-c", "spin-c", "epoll-c", "ebpf-xdp", "kmod-kthread")
TIMEOUT_S = 0.2
TIMEOUT_NS = TIMEOUT_S * 1e9

Draw = Callable[[st.SearchStrategy[Any]], Any]


# ---------------------------------------------------------------- the page, parsed


class _Notes(HTMLParser):
    """The figure notes of a page (class figure-note), with their attributes and text,
    and every cell of the summary tables."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.notes: list[tuple[dict[str, str], str]] = []
        self.cells: list[tuple[str, dict[str, str]]] = []  # (tag, attrs) in summary rows
        self._note: tuple[dict[str, str], list[str]] | None = None
        self._in_summary = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._in_summary = "summary" in a.get("class", "").split()
        if self._in_summary and tag in ("td", "th"):
            self.cells.append((tag, a))
        if "figure-note" in a.get("class", "").split():
            self._note = (a, [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_summary = False
        if tag == "p" and self._note is not None:
            self.notes.append((self._note[0], "".join(self._note[1])))
            self._note = None

    def handle_data(self, data: str) -> None:
        if self._note is not None:
            self._note[1].append(data)


def _parse(html: str) -> _Notes:
    page = _Notes()
    page.feed(html)
    return page


def _text(html: str) -> str:
    """The page without its inline SVG (whose path coordinates are numbers too)."""
    return re.sub(r"<svg\b.*?</svg>", "", html, flags=re.S)


def _raised(html: str) -> list[str]:
    """The figures the page left out because drawing them raised."""
    return [text for a, text in _parse(html).notes if "data-error" in a]


# ---------------------------------------------------------------- generated runs


def _number(draw: Draw, low: float, high: float, *, missing: bool = True) -> float | None:
    """A measurement between ``low`` and ``high``; sometimes None or NaN (not measured)."""
    if missing:
        kind = draw(st.sampled_from(("value", "value", "value", "none", "nan")))
        if kind == "none":
            return None
        if kind == "nan":
            return math.nan
    return float(draw(st.floats(low, high, allow_nan=False)))


def _histogram(draw: Draw, lost: int) -> tuple[str | None, dict[str, float | None]]:
    """An encoded histogram of a few RTTs (plus ``lost`` requests at the timeout), or none,
    or an empty one; and the row's latency record from it (sometimes absent values)."""
    kind = draw(st.sampled_from(("values", "values", "values", "none", "empty")))
    hist: HdrHistogram = empty()
    if kind == "values":
        base = draw(st.floats(2_000, 300_000))
        for v in draw(st.lists(st.floats(0.5, 20.0), min_size=1, max_size=12)):
            hist.record_value(int(base * v), draw(st.integers(1, 50)))
    if lost:
        hist.record_value(int(TIMEOUT_NS), lost)
    total = hist.get_total_count()
    latency: dict[str, float | None] = {
        name: (float(hist.get_value_at_percentile(p)) if total else None)
        for name, p in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
    }
    latency["min"] = float(hist.get_min_value()) if total else None
    latency["max"] = float(hist.get_max_value()) if total else None
    # a point outside its interval: the mean may fall outside [min, max]
    latency["mean"] = _number(draw, 0.0, 1e9) if total else None
    if draw(st.booleans()):  # a metric missing from the record (null) or NaN
        latency[draw(st.sampled_from(("p50", "p99", "p999", "mean")))] = draw(
            st.sampled_from((None, math.nan))
        )
    if kind == "none" and not lost:
        return None, latency
    return encode(hist), latency


@st.composite
def results_documents(draw: Draw) -> dict[str, Any]:
    """A hellobench/2 results document with the oddities real runs have."""
    impls = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    envs = draw(st.lists(st.sampled_from(("host", "vm")), min_size=1, max_size=2, unique=True))
    described = [e for e in envs if draw(st.booleans()) or e == envs[0]]
    modes = draw(st.lists(st.sampled_from(("pingpong", "rate", "flood")), min_size=1, unique=True))
    rx_cpus = draw(st.lists(st.sampled_from(("client", "server")), min_size=1, unique=True))
    idles = draw(st.lists(st.sampled_from(("default", "poll")), min_size=1, unique=True))
    # uneven rounds: each impl has its own number of rounds, 1 to 10
    rounds = {i: draw(st.integers(1, 10)) for i in impls}
    rows: list[dict[str, Any]] = []
    for env in envs:
        for impl in impls:
            for mode in modes:
                fractions = [0.5, 0.9] if mode == "rate" else [None]
                if mode != "pingpong":  # the load modes at the default levels only
                    levels = [("client", "default")]
                else:
                    levels = [(r, i) for r in rx_cpus for i in idles]
                for fraction in fractions[: draw(st.integers(1, len(fractions)))]:
                    for rx_cpu, idle in levels:
                        for trial in range(rounds[impl]):
                            rows.append(_row(draw, env, impl, mode, fraction, rx_cpu, idle, trial))
    config: dict[str, Any] = {"trials": max(rounds.values()), "modes": modes}
    if draw(st.booleans()):
        config["reply_timeout_s"] = TIMEOUT_S
    document = {
        "schema": "hellobench/2",
        "run_id": "generated",
        "created": "2026-12-07T00:00:00+00:00",
        "complete": draw(st.booleans()),
        "tool": {},
        "config": config,
        "impls": {i: IMPLS[i] for i in impls},
        "environments": {e: _environment(draw, e) for e in described},
        "results": rows,
        "skipped": [],
    }
    if draw(st.booleans()):
        document["crosschecks"] = [
            {
                "env": envs[0],
                "impl": impls[0],
                "topology": "lo",
                "rx_cpu": "client",
                "idle": "default",
                "ours_p50_ns": _number(draw, 1e3, TIMEOUT_NS),
                "probe_p50_ns": _number(draw, 1e3, 1e6),
                # a ratio outside the repetitions it is the median of
                "ratio": _number(draw, 0.1, 10.0),
                "ratios": [1.0, 1.1],
                "within_tolerance": draw(st.booleans()),
                "method": "generated",
            }
        ]
    validate(document, "generated")
    return document


def _environment(draw: Draw, name: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "name": name,
        "kernel": "6.1.0",
        "accel": draw(st.sampled_from(("native", "kvm", "tcg"))),
        "emulated": draw(st.booleans()),
        "cpu_model": "generated CPU",
        "cpu_count": 2,
        "python": "3.11",
    }
    if draw(st.booleans()):
        ratio = _number(draw, 0.5, 2.0)
        env["calibration"] = {
            "null_syscall_ns": _number(draw, 50.0, 500.0),
            "context_switch_ns": _number(draw, 500.0, 5000.0),
            "wakeup_ns": _number(draw, 1000.0, 10000.0),
            # the point may lie outside its interval
            "driver_fidelity": {"rtt_ratio": ratio, "rtt_ratio_ci95": [1.2, 1.3]},
        }
    return env


def _row(
    draw: Draw,
    env: str,
    impl: str,
    mode: str,
    fraction: float | None,
    rx_cpu: str,
    idle: str,
    trial: int,
) -> dict[str, Any]:
    failed = draw(st.integers(0, 9)) == 0
    requests = 0 if failed else draw(st.integers(0, 10_000))
    lost = draw(st.sampled_from((0, 0, 0, requests // 100, requests // 2))) if requests else 0
    histogram, latency = (None, dict.fromkeys(("p50", "p90", "p99", "p999", "max", "mean")))
    if not failed:
        histogram, latency = _histogram(draw, lost)
    kind = IMPLS[impl]["kind"]
    no_server = kind != "userspace"
    per_request = {
        "server_syscalls": None if no_server else _number(draw, 0.0, 10.0),
        "client_syscalls": _number(draw, 0.0, 10.0),
        "server_ctx_switches": None if no_server else _number(draw, 0.0, 3.0),
        "system_ctx_switches": _number(draw, 0.0, 5.0),
        "bpf_run_ns": _number(draw, 10.0, 500.0) if kind == "ebpf" else None,
        "cpu_ns": {
            k: _number(draw, 0.0, 20_000.0) for k in ("user", "system", "softirq", "irq", "total")
        },
    }
    duration = 0.0 if failed else 0.5
    replies = requests - lost
    offered = None if mode != "rate" else _number(draw, 1e3, 1e6)
    return {
        "env": env,
        "impl": impl,
        "kind": kind,
        "mode": mode,
        "size": 64,
        "topology": "lo",
        "trial": trial,
        "status": "failed" if failed else "ok",
        "error": "server did not start" if failed else None,
        "outstanding": 1,
        "offered_rps": offered,
        "load_fraction": fraction,
        "server_cpu": 1,
        "client_cpu": 0,
        "rx_cpu": rx_cpu,
        "idle": idle,
        "requests": requests,
        "replies": replies,
        "lost": lost,
        "drained": 0,
        "duration_s": duration,
        "throughput_rps": replies / duration if duration else 0.0,
        "send_rps": requests / duration if duration else None,
        "latency_ns": latency,
        "per_request": per_request,
        "accounting": {"server_process": not no_server, "note": "generated"},
        "histogram": histogram,
        "timing": "probe-free",
    }


def _run(document: dict[str, Any], folder: Path) -> Run:
    run = Run.from_json(document, "generated")
    run.path = folder / "results.json"
    return run


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(results_documents())
def test_every_generated_run_renders_with_every_figure_drawn(document: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        html = build_page(_run(document, Path(folder)), Path(folder))
    assert not _raised(html), _raised(html)
    for svg in re.findall(r"<svg\b.*?</svg>", html, flags=re.S):
        assert "</svg>" in svg


# ---------------------------------------------------------------- the run that crashed


@pytest.fixture(scope="module")
def crash_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("crash-report")
    index = render_report(Run.load(CRASH_RUN), out_dir=out)
    assert index == out / "index.html"
    return index.read_text(encoding="utf-8")


def test_the_run_that_crashed_the_report_renders(crash_html: str) -> None:
    assert not _raised(crash_html), _raised(crash_html)
    assert 'id="summary"' in crash_html and 'id="environment"' in crash_html


def _summary_cells(html: str, impl: str, mode: str) -> dict[str, str]:
    """The summary cells (column key -> text) of the first line of ``impl`` in ``mode``."""
    row = re.search(
        rf'<tr class="mode-{mode}" data-impl="{re.escape(impl)}" data-mode="{mode}".*?</tr>',
        html,
        flags=re.S,
    )
    assert row, (impl, mode)
    return {
        m.group(1): re.sub(r"<[^>]+>", "", m.group(2))
        for m in re.finditer(r'<td[^>]*data-col="([^"]+)"[^>]*>(.*?)</td>', row.group(0))
    }


def test_a_percentile_at_the_timeout_reads_as_lost_requests(crash_html: str) -> None:
    # host blocking-c rate: p99 and p99.9 are 200,015,871 ns, the 0.2 s timeout
    cells = _summary_cells(crash_html, "blocking-c", "rate")
    assert cells["p99"].startswith("≥ timeout (lost ") and "%" in cells["p99"]
    assert cells["p999"].startswith("≥ timeout (lost ")
    assert "lost" not in cells["p50"]
    text = _text(crash_html)
    assert "200,016" not in text and "200016" not in text
    shown = [c for c in cells.values() if "timeout" in c]
    # the share lost is the requests recorded at the timeout: 1152 of 55388 here
    assert any("2.1 %" in c for c in shown), shown


def test_the_summary_scrolls_with_the_impl_column_in_view(crash_html: str) -> None:
    style = re.search(r"table\.summary th\.impl, table\.summary td\.impl \{([^}]*)\}", crash_html)
    assert style, "no sticky rule for the impl column"
    rule = style.group(1)
    assert "position: sticky" in rule and "left: 0" in rule and "background" in rule
    assert re.search(r"\.scroll \{[^}]*overflow-x: auto", crash_html)
    page = _parse(crash_html)
    rows = [a for tag, a in page.cells if tag == "td" and "data-col" not in a]
    assert rows
    lines = re.findall(r'<tr class="mode-[a-z]+" data-impl="[^"]+".*?>\s*<td([^>]*)>', crash_html)
    assert lines and all('class="impl"' in attrs for attrs in lines)


def test_fmt_rtt() -> None:
    assert fmt_rtt(200_015_871.0, TIMEOUT_NS, 51.52) == "≥ timeout (lost 51.5 %)"
    assert fmt_rtt(200_015_871.0, TIMEOUT_NS) == "≥ timeout (lost)"
    assert fmt_rtt(200_015_871.0, None) == "200016"  # no timeout recorded: a time
    assert fmt_rtt(45_000.0, TIMEOUT_NS) == "45.0"
    assert fmt_rtt(None, TIMEOUT_NS) == "—" and fmt_rtt(math.nan, TIMEOUT_NS) == "—"


def test_a_generated_row_at_the_timeout_shows_lost(tmp_path: Path) -> None:
    """p99 equal to the timeout in every trial: the summary says lost, with the share."""
    hist = empty()
    hist.record_value(40_000, 97)
    hist.record_value(int(TIMEOUT_NS), 3)
    row = {
        "env": "host", "impl": "blocking-c", "kind": "userspace", "mode": "pingpong",
        "size": 64, "topology": "lo", "trial": 0, "status": "ok", "server_cpu": 1,
        "client_cpu": 0, "requests": 100, "replies": 97, "lost": 3, "drained": 0,
        "duration_s": 1.0, "throughput_rps": 97.0,
        "latency_ns": {"min": 40_000.0, "p50": 40_000.0, "p90": 40_000.0,
                       "p99": TIMEOUT_NS, "p999": TIMEOUT_NS, "max": TIMEOUT_NS,
                       "mean": 6_038_800.0},
        "per_request": {"server_syscalls": 2.0, "client_syscalls": 2.0,
                        "server_ctx_switches": 1.0, "system_ctx_switches": 2.0,
                        "cpu_ns": {"user": 1.0, "system": 1.0, "softirq": 1.0, "irq": 0.0,
                                   "total": 3.0}},
        "histogram": encode(hist),
    }  # fmt: skip
    document = {
        "schema": "hellobench/2", "run_id": "timeout", "created": "2026-12-07",
        "complete": True, "config": {"reply_timeout_s": TIMEOUT_S},
        "impls": {"blocking-c": IMPLS["blocking-c"]}, "environments": {},
        "results": [{**row, "trial": t} for t in range(3)], "skipped": [],
    }  # fmt: skip
    html = build_page(_run(document, tmp_path), tmp_path)
    cells = _summary_cells(html, "blocking-c", "pingpong")
    assert cells["p99"] == "≥ timeout (lost 3.0 %)1", cells["p99"]  # 1: its footnote
    assert cells["p50"] == "40.0"
    assert "200,016" not in _text(html) and "200016" not in _text(html)
    assert not _raised(html)
