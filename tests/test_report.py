"""The HTML report: renders from the TEST FIXTURE run, opens cleanly in headless Chromium,
has every section, valid inline SVG, and claim numbers that match an independent
recomputation from results.json.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so console errors,
uncaught exceptions and failed loads are received as events, not scraped from logs.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
from hdrh.histogram import HdrHistogram

from bench.cli import main
from bench.impl.manifest import FAMILIES
from bench.report.figures import cdf_points, merge_histograms
from bench.report.render import render_report
from bench.results.metrics import fmt_us
from bench.results.run import Run
from bench.results.schema import ResultsError

FIXTURE_RUN = Path(__file__).resolve().parent / "fixtures" / "runs" / "fixture-base"
SECTION_IDS = (
    "answer",
    "reproduce",
    "summary",
    "failed",
    "skipped",
    "latency",
    "load",
    "cost",
    "claim",
    "environment",
    "raw-data",
)
PAIRS = (
    ("kmod-kthread", "blocking-c"),
    ("kmod-softirq", "blocking-c"),
    ("ebpf-xdp", "blocking-c"),
    ("ebpf-tc", "blocking-c"),
    ("blocking-c", "blocking-py"),
    ("asyncio-py", "blocking-py"),
)
# The documented bootstrap (bench/stats.py): 10000 resamples, seed 2493, baseline first.
SEED, RESAMPLES = 2493, 10_000
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DEADLINE_S = 120.0  # a hung browser fails the test instead of hanging it; not a measurement


# ---------------------------------------------------------------- the page, parsed


class _Page(HTMLParser):
    """Every element's tag and attributes, and the text under each element with an id/class."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self._open: list[tuple[str, dict[str, str], list[str]]] = []
        self.texts: list[tuple[str, dict[str, str], str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if tag in {"p", "td", "li", "div", "h4"}:
            self._open.append((tag, a, []))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                t, a, parts = self._open.pop(i)
                text = "".join(parts)
                self.texts.append((t, a, text))
                if self._open:
                    self._open[-1][2].append(text)
                return

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][2].append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    index = render_report(Run.load(FIXTURE_RUN), out)
    assert index == out / "index.html"
    return index


@pytest.fixture(scope="module")
def html(report: Path) -> str:
    return report.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(html: str) -> _Page:
    return parse(html)


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURE_RUN / "results.json").read_text())
    return loaded


# ---------------------------------------------------------------- structure


def test_every_section_is_there(page: _Page) -> None:
    ids = {a.get("id") for _, a in page.elements}
    missing = [s for s in SECTION_IDS if s not in ids]
    assert not missing, f"missing sections: {missing}"


def test_ids_are_unique(page: _Page) -> None:
    ids = [a["id"] for _, a in page.elements if "id" in a]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, f"duplicate ids (SVGs would clash): {sorted(dupes)[:5]}"


def test_every_inline_svg_parses(html: str) -> None:
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    # 2 environments x (3 CDFs + load + cost + the exploratory effects: each impl against
    # the one its manifest compares it with); no primary figure: the fixture has no row
    # with receive work on the server's CPU
    assert len(svgs) == 12
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
        assert len(list(root.iter())) > 20


def test_self_contained(page: _Page, html: str) -> None:
    for _tag, attrs in page.elements:
        for attr in ("src", "href", "xlink:href"):
            value = attrs.get(attr)
            if value is not None:
                assert not re.match(r"^[a-z][a-z0-9+.-]*:", value), f"external {attr}={value}"
    assert "<script" not in html
    assert "<link" not in html
    assert "url(http" not in html


def test_raw_data_link_resolves(report: Path, page: _Page) -> None:
    hrefs = [
        a["href"]
        for t, a in page.elements
        if t == "a" and a.get("href", "").endswith("results.json")
    ]
    assert hrefs
    assert (report.parent / hrefs[0]).resolve() == (FIXTURE_RUN / "results.json").resolve()


def test_synthetic_and_emulated_warnings(page: _Page) -> None:
    texts = [(a, t) for tag, a, t in page.texts if tag == "div"]
    assert any(a.get("id") == "synthetic-warning" and "not a measurement" in t for a, t in texts)
    emulated = [t for a, t in texts if "emulated" in a.get("class", "")]
    assert emulated and all("vm" in t for t in emulated)


def test_null_values_print_as_dash_with_the_accounting_note(
    page: _Page, data: dict[str, Any]
) -> None:
    notes = {
        a["id"]: t
        for tag, a, t in page.texts
        if tag == "li" and a.get("id", "").startswith("note-")
    }
    note_of = {r["impl"]: r["accounting"]["note"] for r in data["results"]}
    no_server = {r["impl"] for r in data["results"] if not r["accounting"]["server_process"]}
    assert {"ebpf-xdp", "ebpf-tc", "kmod-kthread", "kmod-softirq"} <= no_server
    cells = [
        (a, t) for tag, a, t in page.texts if tag == "td" and a.get("data-col") == "server_syscalls"
    ]
    summary_rows = [a for tag, a in page.elements if tag == "tr" and a.get("data-impl")]
    assert cells and len(summary_rows) == len(cells)
    for row, (cell, text) in zip(summary_rows, cells, strict=True):
        impl = row["data-impl"]
        if impl in no_server:
            # no server process: a dash pointing at the row's accounting note, never a 0
            assert re.fullmatch(r"—\d+", text), text
            assert "data-value" not in cell
            assert notes[f"note-{text[1:]}"] == note_of[impl]
        else:
            assert float(cell["data-value"]) > 0


def test_summary_medians_and_trial_counts(page: _Page, data: dict[str, Any]) -> None:
    rows = [
        r
        for r in data["results"]
        if r["env"] == "vm"
        and r["impl"] == "blocking-c"
        and r["mode"] == "pingpong"
        and r["size"] == 64
        and r["status"] == "ok"
    ]
    # RTT percentiles: the trials' histograms merged (every request counted once), not the
    # median of per-trial p99s; p50 of the CPU figures stays a median over trials.
    merged = HdrHistogram(1, 60_000_000_000, 3)
    for r in rows:
        merged.add(HdrHistogram.decode(r["histogram"]))
    expect = float(merged.get_value_at_percentile(99.0))
    assert expect != statistics.median(r["latency_ns"]["p99"] for r in rows)  # tells them apart
    p99 = [a for tag, a in page.elements if tag == "td" and a.get("data-col") == "p99"]
    vm_tr = [a for tag, a in page.elements if tag == "tr" and a.get("data-impl")]
    idx = [
        i
        for i, a in enumerate(vm_tr)
        if a["data-impl"] == "blocking-c"
        and a["data-mode"] == "pingpong"
        and a["data-size"] == "64"
    ]
    assert len(idx) == 2  # host and vm
    assert float(p99[idx[1]]["data-value"]) == expect
    texts = [t for tag, _a, t in page.texts if tag == "td"]
    assert "4/5" in texts  # the failed vm kmod-softirq flood trial
    assert "5/5" in texts


def test_failed_rows_and_skipped_impls_are_listed(html: str, data: dict[str, Any]) -> None:
    failed = [r for r in data["results"] if r["status"] == "failed"]
    assert failed
    for r in failed:
        assert r["error"] in html
    for s in data["skipped"]:
        assert s["reason"] in html and s["impl"] in html


# ---------------------------------------------------------------- the claim, recomputed

# A real default run (host and vm) whose report once crashed: the primary family is
# recomputed from its rows here, independently of bench/analysis.
REAL_RUN = (
    Path(__file__).resolve().parent / "fixtures" / "runs" / "crash-negative-interval-lost-replies"
)


@pytest.fixture(scope="module")
def real_data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REAL_RUN / "results.json").read_text())
    return loaded


@pytest.fixture(scope="module")
def real_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("real-report")
    return render_report(Run.load(REAL_RUN), out).read_text()


def _trials(data: dict[str, Any], env: str, impl: str) -> list[dict[str, Any]]:
    return [
        r
        for r in data["results"]
        if r["env"] == env
        and r["impl"] == impl
        and r["mode"] == "pingpong"
        and r["size"] == 64
        and r["topology"] == "lo"
        and r["status"] == "ok"
    ]


def _p50s(data: dict[str, Any], env: str, impl: str, idle: str) -> dict[int, float]:
    """Per round, the p50 of ``impl``'s primary configuration (rx on the server's CPU)."""
    return {
        r["trial"]: float(r["latency_ns"]["p50"])
        for r in data["results"]
        if (r["env"], r["impl"], r["mode"], r["size"]) == (env, impl, "pingpong", 64)
        and r["topology"] == "lo" and r.get("rx_cpu") == "server" and r.get("idle") == idle
        and not r.get("server_options") and r.get("client_wait", "block") == "block"
        and r["status"] == "ok"
    }  # fmt: skip


def _primary_rows(html: str) -> list[dict[str, str]]:
    page = parse(html)
    return [a for t, a in page.elements if t == "tr" and "data-kind" in a]


def test_the_primary_family_matches_an_independent_recomputation(
    real_html: str, real_data: dict[str, Any]
) -> None:
    rows = _primary_rows(real_html)
    # the host's family, fixed before the data: ebpf-tc and ebpf-xdp against blocking-c and
    # spin-c against it, at both idle levels (this run's dose-response was not measured at
    # rx on the server's CPU, and the vm's ladder only at rx on the client CPU)
    assert sorted((r["data-change"], r["data-idle"]) for r in rows) == sorted(
        (f"{b} − blocking-c", idle)
        for b in ("ebpf-tc", "ebpf-xdp", "spin-c")
        for idle in ("default", "poll")
    )
    m = len(rows)
    for r in rows:
        b_impl, a_impl = r["data-change"].split(" − ")
        a = _p50s(real_data, "host", a_impl, r["data-idle"])
        b = _p50s(real_data, "host", b_impl, r["data-idle"])
        d = np.array([b[t] - a[t] for t in sorted(set(a) & set(b))])
        assert int(r["data-n"]) == d.size == 10
        half = scipy.stats.t.ppf(1 - 0.05 / (2 * m), d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
        assert float(r["data-mean"]) == pytest.approx(d.mean())
        assert float(r["data-ci-low"]) == pytest.approx(d.mean() - half)
        assert float(r["data-ci-high"]) == pytest.approx(d.mean() + half)


def test_the_answer_says_the_primary_numbers_first(real_html: str) -> None:
    page = parse(real_html)
    verdicts = {
        a["data-env"]: t for tag, a, t in page.texts if tag == "p" and a.get("class") == "verdict"
    }
    host = verdicts["host"]
    assert host.startswith("In host (") and "at rx on the server's CPU" in host
    for r in _primary_rows(real_html):
        mean, lo, hi = (float(r[k]) for k in ("data-mean", "data-ci-low", "data-ci-high"))
        faster = r["data-kind"] == "kernel vs twin" and mean < 0 and hi < 0
        sign = -1.0 if faster else 1.0
        for value in (mean, lo, hi):
            assert fmt_us(sign * value) in host, (r, host)
    # the vm measured its ladder only with receive work on the client's CPU
    assert verdicts["vm"].startswith("No primary verdict in vm")
    assert "rx_cpu=client" not in host and "client's CPU" not in host


def test_the_inline_placement_is_exploratory_and_labelled(real_html: str) -> None:
    page = parse(real_html)
    effects = [a for t, a in page.elements if t == "tr" and "data-q" in a]
    assert any(a["data-rx-cpu"] == "client" for a in effects)
    assert all(0.0 <= float(a["data-q"]) <= 1.0 for a in effects)
    assert "no NIC does" in real_html
    # no interval from one or two rounds: the survey's impls are listed as too few rounds
    assert all(int(a["data-n"]) >= 3 for a in effects)
    assert "differences with too few rounds" in real_html


def test_no_residual_is_drawn(real_html: str) -> None:
    texts = re.findall(r"<!-- (.*?) -->", real_html) + re.findall(r">([^<>]+)</text>", real_html)
    assert not [t for t in texts if t.strip().lower() == "rest"]
    assert "decomposition" not in real_html


# ---------------------------------------------------------------- in a real browser


def _high(fd: int) -> int:
    """``fd`` moved to 10 or above, so that the child's dup2 to 3 and 4 never clobber it."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class DevToolsPipe:
    """Chromium's DevTools protocol over --remote-debugging-pipe (fds 3 and 4)."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_r, self._to_w = (_high(fd) for fd in os.pipe())
        self._from_r, from_w = (_high(fd) for fd in os.pipe())
        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]

        def wire() -> None:  # in the child, before exec: the pipe ends become fds 3 and 4
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        self.proc = subprocess.Popen(
            args,
            preexec_fn=wire,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self._deadline = time.monotonic() + DEADLINE_S

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = self._deadline - time.monotonic()
            ready, _, _ = select.select([self._from_r], [], [], max(left, 0.0))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_event(self, method: str) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == method:
                return e
        while True:
            e = self._read_message()
            self.events.append(e)
            if e.get("method") == method:
                return e

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError, EOFError, TimeoutError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_w)
        os.close(self._from_r)


def problems(events: list[dict[str, Any]]) -> list[str]:
    """Console errors/warnings, uncaught exceptions and failed loads among DevTools events."""
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            out.append(f"exception: {p['exceptionDetails'].get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in {"error", "warning", "assert"}:
            out.append(f"console.{p['type']}: {[a.get('value') for a in p.get('args', [])]}")
        elif m == "Log.entryAdded" and p["entry"].get("level") in {"error", "warning"}:
            out.append(f"log {p['entry']['level']}: {p['entry'].get('text')}")
        elif m == "Network.loadingFailed":
            out.append(f"load failed: {p.get('errorText')}")
    return out


def open_in_chromium(index: Path, shot: Path, profile: Path) -> list[str]:
    """Load the page, save a full-page screenshot, return the problems the browser saw."""
    tools = DevToolsPipe(profile)
    try:
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.call(f"{domain}.enable", session)
        tools.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=1400,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
        )
        tools.call("Page.navigate", session, url=index.resolve().as_uri())
        tools.wait_event("Page.loadEventFired")
        metrics = tools.call("Page.getLayoutMetrics", session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        png = tools.call(
            "Page.captureScreenshot",
            session,
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": 1400, "height": min(size["height"], 30000), "scale": 1},
        )["data"]
        shot.write_bytes(base64.b64decode(png))
        tools.call("Runtime.evaluate", session, expression="1")  # flush pending events
        return problems([e for e in tools.events if e.get("sessionId") == session])
    finally:
        tools.close()


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install chromium; the setup script installs it)",
)


@pytest.fixture
def chromium_profile(tmp_path: Path) -> Iterator[Path]:
    profile = tmp_path / "profile"
    profile.mkdir()
    yield profile


@needs_chromium
def test_report_opens_in_headless_chromium_without_errors(
    report: Path, chromium_profile: Path, tmp_path: Path
) -> None:
    shot = tmp_path / "report-fixture-base.png"
    found = open_in_chromium(report, shot, chromium_profile)
    print(f"\nscreenshot of the fixture report: {shot}", file=sys.stderr)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000  # a page of tables and figures, not a blank one
    assert not found, found


TOP_OF_PAGE = """(() => {
  const box = (el) => el ? el.getBoundingClientRect().toJSON() : null;
  const answer = document.querySelector('#answer');
  return JSON.stringify({
    first_h2: document.querySelector('h2').textContent,
    height: window.innerHeight,
    verdict: box(answer && answer.querySelector('.verdict')),
    figure: box(answer && answer.querySelector('.effects-figure svg')),
  });
})()"""


def top_of_page(index: Path, shot: Path, profile: Path, width: int, height: int) -> Any:
    """Load the page in a ``width`` x ``height`` window, screenshot what shows without
    scrolling, and return where the answer's parts sit."""
    tools = DevToolsPipe(profile)
    try:
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        tools.call("Page.enable", session)
        tools.call(
            "Emulation.setDeviceMetricsOverride",
            session, width=width, height=height, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        tools.call("Page.navigate", session, url=index.resolve().as_uri())
        tools.wait_event("Page.loadEventFired")
        png = tools.call("Page.captureScreenshot", session, format="png")["data"]
        shot.write_bytes(base64.b64decode(png))
        value = tools.call("Runtime.evaluate", session, expression=TOP_OF_PAGE)
        return json.loads(value["result"]["value"])
    finally:
        tools.close()


@needs_chromium
def test_a_laptop_screen_shows_the_answer_and_its_figure_without_scrolling(
    chromium_profile: Path, tmp_path: Path
) -> None:
    from tests.test_effects import _corner_run

    index = render_report(_corner_run(), tmp_path / "report")
    shot = tmp_path / "report-top.png"
    where = top_of_page(index, shot, chromium_profile, 1366, 768)
    print(f"\nscreenshot of the top of the page: {shot}", file=sys.stderr)
    assert where["first_h2"] == "The answer"
    assert where["verdict"] and where["verdict"]["bottom"] <= where["height"]
    figure = where["figure"]
    assert figure and figure["top"] < where["height"]
    visible = (min(figure["bottom"], where["height"]) - figure["top"]) / figure["height"]
    assert visible >= 0.6, where  # most of the figure, not just its title
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_chromium
def test_the_browser_check_catches_errors(tmp_path: Path, chromium_profile: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><p>x</p><script>console.error("boom");'
        'missing();</script><img src="missing.png"></body></html>'
    )
    found = open_in_chromium(bad, tmp_path / "bad.png", chromium_profile)
    assert any("boom" in f for f in found), found
    assert any("exception" in f for f in found), found
    assert any("missing.png" in f or "load" in f for f in found), found


# ---------------------------------------------------------------- edges


def test_cdf_points_follow_the_merged_histograms(data: dict[str, Any]) -> None:
    rows = _trials(data, "host", "blocking-c")
    merged = merge_histograms([r["histogram"] for r in rows])
    assert merged is not None
    assert merged.get_total_count() == sum(
        HdrHistogram.decode(r["histogram"]).get_total_count() for r in rows
    )
    xs, ys = cdf_points(merged)
    assert len(xs) > 50
    assert xs == sorted(xs) and ys == sorted(ys)
    assert ys[0] < 0.01 and ys[-1] == 1.0
    median_us = xs[next(i for i, y in enumerate(ys) if y >= 0.5)]
    p50s = [r["latency_ns"]["p50"] / 1000 for r in rows]
    assert min(p50s) * 0.95 <= median_us <= max(p50s) * 1.05


def test_incomplete_run_and_undescribed_environment(data: dict[str, Any], tmp_path: Path) -> None:
    odd = json.loads(json.dumps(data))
    odd["complete"] = False
    for r in odd["results"]:
        if r["env"] == "host":
            r["env"] = "bare"
    del odd["environments"]["host"]
    odd["skipped"] = []
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(odd))
    html = render_report(Run.load(run), tmp_path / "out").read_text()
    page = parse(html)
    ids = {a.get("id") for _, a in page.elements}
    assert "incomplete-warning" in ids and "summary-bare" in ids and "env-bare" in ids
    assert "does not describe this environment" in html
    effects = {(a["data-env"], a["data-change"]) for t, a in page.elements if "data-q" in a}
    assert ("bare", "ebpf-xdp − blocking-c") in effects  # the undescribed environment's too
    for svg in re.findall(r"<svg\b.*?</svg>", html, flags=re.S):
        ET.fromstring(svg)


def test_default_output_is_reports_run_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("bench.report.render.work_root", lambda: tmp_path)
    index = render_report(Run.load(FIXTURE_RUN))
    assert index == tmp_path / "reports" / "fixture-base" / "index.html"
    assert index.exists()


def test_bad_input_raises_results_error_and_main_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ResultsError):
        render_report(Run.load(tmp_path), tmp_path / "out")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "corrupt JSON" in err and "\n" not in err


def _bench_run_available() -> bool:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench", "run", "--help"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.mark.slow
def test_report_from_a_real_short_run(tmp_path: Path) -> None:
    if not _bench_run_available():
        pytest.skip("`python -m bench run` is not available yet")
    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--quick",
            "--impl",
            "blocking-c",
            "--impl",
            "blocking-py",
            "--mode",
            "pingpong",
            "--trials",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    runs = sorted(out.glob("*/results.json"))
    assert len(runs) == 1, runs
    index = render_report(Run.load(runs[0].parent), tmp_path / "report")
    page = parse(index.read_text())
    ids = {a.get("id") for _, a in page.elements}
    assert set(SECTION_IDS) <= ids
    for svg in re.findall(r"<svg\b.*?</svg>", index.read_text(), flags=re.S):
        ET.fromstring(svg)
    # two rounds: the manifests' comparison is listed as too few rounds, never estimated
    listed = [t for tag, _a, t in page.texts if tag == "li" and "blocking-c − blocking-py" in t]
    assert listed and all("2 paired round(s)" in t for t in listed), listed
    assert not [
        a for t, a in page.elements if "data-q" in a and a.get("data-factor") == "comparison"
    ]


def test_the_summary_groups_impls_by_family_in_the_manifests_order(
    page: _Page, data: dict[str, Any]
) -> None:
    family_of = {name: info["family"] for name, info in data["impls"].items()}
    seen: list[str] = []
    current = None
    for tag, attrs in page.elements:
        if tag == "table" and "summary" in attrs.get("class", ""):
            current, seen = None, []  # each environment's table groups on its own
        if tag != "tr":
            continue
        if "data-family" in attrs:
            current = attrs["data-family"]
            assert current not in seen, f"{current} split in two groups"
            seen.append(current)
            ranks = [FAMILIES.index(f) for f in seen]
            assert ranks == sorted(ranks), seen
        elif "data-impl" in attrs and attrs.get("class", "").startswith("mode-"):
            assert family_of[attrs["data-impl"]] == current, attrs["data-impl"]
    assert len(seen) >= 2


def test_the_percentile_plot_reads_the_merged_histogram(data: dict[str, Any]) -> None:
    from bench.report.figures import percentile_points

    rows = _trials(data, "host", "blocking-c")
    merged = merge_histograms([r["histogram"] for r in rows])
    assert merged is not None
    xs, ys = percentile_points(merged)
    assert xs[0] == 1.0 and ys == sorted(ys)
    total = merged.get_total_count()
    assert xs[-1] == pytest.approx(total)  # up to the last request: 1 − 1/count
    for x, y in zip(xs, ys, strict=True):
        p = (1.0 - 1.0 / x) * 100.0
        assert y == merged.get_value_at_percentile(p) / 1000.0


def test_the_latency_figures_draw_the_percentile_plot_beside_the_cdf(html: str) -> None:
    section = html[html.index('<section id="latency">') : html.index('<section id="load">')]
    assert "percentile plot" in section
    assert section.count("<svg") == 6  # 2 environments x 3 modes, each with both panels
