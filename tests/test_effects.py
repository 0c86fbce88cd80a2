"""Exploratory effects: factor differences paired within rounds, with Student-t intervals
and q-values, recovered from rows whose values are known, and from a real run of two
control impls."""

from __future__ import annotations

import dataclasses
import html
import os
import re
from pathlib import Path

import pytest

from bench.analysis.effects import Effect, exploratory
from bench.report.render import render_report
from bench.results.descriptions import ImplInfo
from bench.results.rows import Latency, PhaseRow
from bench.results.run import Run
from tests.bench_runs import bench_run
from tests.test_results import BASE

US = 1000.0


def effects(run: Run) -> list[Effect]:
    """Every exploratory effect, none left out for a primary family."""
    return list(exploratory(run, {}).effects)


def _factor(run: Run, *factors: str) -> list[Effect]:
    return [e for e in effects(run) if e.factor in factors]


def _template() -> tuple[Run, PhaseRow]:
    run = Run.load(BASE)
    row = next(r for r in run.rows if r.ok and r.mode == "pingpong" and r.env == "host")
    return run, dataclasses.replace(row, histogram=None)


def _at(row: PhaseRow, trial: int, p50_us: float, **changes: object) -> PhaseRow:
    return dataclasses.replace(
        row,
        trial=trial,
        latency_ns=Latency(p50=p50_us * US),
        **changes,  # type: ignore[arg-type]
    )


# The four server-path controls: (transitions, sleeps) on the request path.
CORNERS = {
    "blocking-c": (True, True), "spin-c": (True, False),
    "kmod-kthread": (False, True), "kmod-kthread-poll": (False, False),
}  # fmt: skip


def _corner_impls() -> dict[str, ImplInfo]:
    return {
        name: ImplInfo(name, "userspace", "user-space blocking", roles=("path-control",),
                       server_path={"transitions": t, "sleeps": s})
        for name, (t, s) in CORNERS.items()
    }  # fmt: skip


def test_a_run_factor_is_paired_within_rounds() -> None:
    run, row = _template()
    default = [100.0, 140.0, 90.0, 120.0]  # rounds differ a lot; the pairs do not
    poll = [v - 50.0 + d for v, d in zip(default, (1.0, -1.0, 0.5, -0.5), strict=True)]
    run.rows = [_at(row, t, v) for t, v in enumerate(default)]
    run.rows += [_at(row, t, v, idle="poll") for t, v in enumerate(poll)]
    (effect,) = [e for e in _factor(run, "idle") if e.metric == "rtt_p50"]
    assert (effect.factor, effect.change, effect.key.idle) == ("idle", "default → poll", "default")
    assert effect.estimate.mean == pytest.approx(-50.0 * US)
    assert effect.estimate.n == 4 and effect.estimate.method == "paired t, 95%, n=4"
    assert effect.estimate.interval.excludes_zero
    assert effect.estimate.interval.high < -45.0 * US  # pairing removed the rounds' spread


def test_server_path_corners_give_simple_effects_and_the_interaction() -> None:
    run, row = _template()
    corners = CORNERS
    run.impls = _corner_impls()
    # declares a server path but is no control: it must not take blocking-c's corner
    run.impls["afxdp-c"] = ImplInfo(
        "afxdp-c", "userspace", "kernel bypass", server_path={"transitions": True, "sleeps": True}
    )
    noise = (0.2, -0.2, 0.1)

    def p50(t: bool, s: bool) -> float:  # base 20, transitions 10, sleeps 40, both +5
        return 20.0 + 10.0 * t + 40.0 * s + 5.0 * (t and s)

    run.rows = [
        _at(row, trial, p50(*corners[name]) + noise[trial], impl=name)
        for name in corners
        for trial in range(3)
    ] + [_at(row, trial, 1.0, impl="afxdp-c") for trial in range(3)]
    found = {(e.factor, e.change): e.estimate
             for e in _factor(run, "sleeps", "transitions", "transitions × sleeps")
             if e.metric == "rtt_p50"}  # fmt: skip
    assert found["sleeps", "spin-c − blocking-c"].mean == pytest.approx(-45.0 * US)
    assert found["sleeps", "kmod-kthread-poll − kmod-kthread"].mean == pytest.approx(-40.0 * US)
    assert found["transitions", "kmod-kthread − blocking-c"].mean == pytest.approx(-15.0 * US)
    assert found["transitions", "kmod-kthread-poll − spin-c"].mean == pytest.approx(-10.0 * US)
    (interaction,) = [v for (f, _), v in found.items() if f == "transitions × sleeps"]
    assert interaction.mean == pytest.approx(5.0 * US)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_a_real_run_measures_what_sleeping_costs(tmp_path: Path) -> None:
    args = ["--impl", "blocking-c", "--impl", "spin-c"]
    args += ["--mode", "pingpong", "--duration", "0.5", "--warmup", "0.1", "--trials", "3"]
    args += ["--no-calibrate", "--env", "host"]
    run = bench_run(tmp_path, args)
    (sleeps,) = [e for e in effects(run) if e.factor == "sleeps" and e.metric == "rtt_p50"]
    assert sleeps.change == "spin-c − blocking-c" and sleeps.estimate.n == 3
    assert sleeps.estimate.interval.low <= sleeps.estimate.mean <= sleeps.estimate.interval.high
    # What the effect is made of, counted (no timing asserted: the machine is shared): the
    # spinning server is never switched out, the blocking one once per request at least.
    switches = {
        r.impl: r.per_request.server_ctx_switches for r in run.rows if r.ok and r.per_request
    }
    assert switches["spin-c"] is not None and switches["spin-c"] < 0.1
    assert switches["blocking-c"] is not None and switches["blocking-c"] >= 0.9
    # no calibration in this run: nothing predicted, and the reason says so
    assert sleeps.prediction.value is None and "calibrated" in sleeps.prediction.basis


def test_the_report_shows_each_effect_beside_its_prediction_test(tmp_path: Path) -> None:
    """The calibrated fixture's host rows at both idle levels: the effects table gives the
    prediction and its equivalence test's outcome, and the page draws the effects figure."""
    run, row = _template()
    assert row.per_request is not None and row.per_request.system_ctx_switches is not None
    # counted apart: no poll returned EAGAIN, so every syscall is on the request path
    per_request = dataclasses.replace(
        row.per_request, server_eagain_syscalls=0.0, client_eagain_syscalls=0.0
    )
    row = dataclasses.replace(row, per_request=per_request)
    calibration = run.environment("host").calibration
    run.environments["host"]["calibration"] = {
        **calibration, "wakeup_median_ns": 40000.0, "wakeup_poll_median_ns": 20000.0,
    }  # fmt: skip
    default = [100.0, 140.0, 90.0, 120.0]
    run.rows = [_at(row, t, v) for t, v in enumerate(default)]
    run.rows += [_at(row, t, v - 50.0 + 0.1 * t, idle="poll") for t, v in enumerate(default)]
    (effect,) = [e for e in effects(run) if e.metric == "rtt_p50"]
    switches = row.per_request.system_ctx_switches
    assert switches is not None
    assert effect.prediction.value == pytest.approx(switches * (20000.0 - 40000.0) / 2)
    assert effect.test is not None and effect.outcome in ("held", "failed", "inconclusive")
    page = render_report(run, tmp_path / "report").read_text()
    cells = re.findall(r'<td data-outcome="(\w*)">([^<]*)</td>', page)
    assert (effect.outcome, effect.outcome) in cells
    assert '<figure class="effects-figure-all" data-env="host">' in page
    assert "predicted µs" in page


def _corner_run() -> Run:
    """The four server-path corners at known p50s, at rx on the server's CPU: transitions
    −15 µs (blocking-c → kmod-kthread), sleeps −45 µs (blocking-c → spin-c)."""
    run, row = _template()
    run.impls = _corner_impls()
    run.impls["blocking-c"] = dataclasses.replace(
        run.impls["blocking-c"], roles=("path-control", "user-space-twin")
    )
    run.impls["kmod-kthread"] = dataclasses.replace(
        run.impls["kmod-kthread"], kind="kernel-module", compare_with=("blocking-c",)
    )
    run.skipped = []
    noise = {"kmod-kthread": (0.2, -0.2, 0.1), "spin-c": (0.1, 0.0, -0.1)}
    quiet = (0.0, 0.0, 0.0)
    run.rows = [
        _at(row, trial, 20 + 10 * t + 40 * s + 5 * (t and s) + noise.get(name, quiet)[trial],
            impl=name, rx_cpu="server", server_cpu=1, client_cpu=0)
        for name, (t, s) in CORNERS.items()
        for trial in range(3)
    ]  # fmt: skip
    return run


def test_the_answer_says_the_primary_family_at_the_server_cpu() -> None:
    from bench.analysis.answer import NOT_MEASURED, answers, one_sentence

    run = _corner_run()
    said = answers(run)["host"]
    assert said.startswith("In host (") and "at rx on the server's CPU" in said
    assert "kmod-kthread answers 15.0 µs [" in said and "faster than blocking-c" in said
    assert "polls instead of sleeping (spin-c − blocking-c) moves p50 RTT by -45.0 µs [" in said
    assert "polls instead of sleeping (kmod-kthread-poll − kmod-kthread)" in said
    assert "the transitions they avoid are measurable: 15.0 µs [" in said
    assert "Bonferroni, m = 3" in said
    sentence = one_sentence(run)
    assert sentence.startswith("In host (") and sentence.endswith(".)")
    run.rows = []
    assert one_sentence(run).startswith(NOT_MEASURED[0].upper() + NOT_MEASURED[1:40])


def test_the_report_opens_with_the_answer(tmp_path: Path) -> None:
    from bench.analysis.answer import answers

    run = _corner_run()
    page = render_report(run, tmp_path / "report").read_text()
    headings = re.findall(r"<h2[^>]*>([^<]*)</h2>", page)
    assert headings[0] == "The answer"
    answer = page[page.index('<section id="answer">') : page.index('<section id="summary">')]
    assert answers(run)["host"] in html.unescape(answer)
    assert '<figure class="effects-figure" data-env="host">' in answer
    assert 'class="caveat"' in answer and "compare within this run only" in answer
    assert '<pre class="reproduce">' in answer
    assert page.count('class="effects-figure"') == 1  # the answer's: the primary family
    assert page.count('class="effects-figure-all"') == 1  # the exploratory effects
    assert "rest" not in re.findall(r"<text[^>]*>([^<]*)</text>", page)
