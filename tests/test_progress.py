"""Progress: steps survive the guest's console on their way to the host's display, the
plain form prints every step with its counts, and a run reports every phase it measures."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from rich.console import Console

from bench.cli.live import PlainLines, display
from bench.runner.progress import STEP_PREFIX, ConsoleRelay, Step, StepLines


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.steps: list[Step] = []

    def __call__(self, text: str) -> None:
        self.lines.append(text)

    def step(self, step: Step) -> None:
        self.steps.append(step)


def test_a_step_survives_its_line_and_damaged_lines_are_not_steps() -> None:
    step = Step("host", "phase", "k", "blocking-c", "pingpong rx@server", 3, 10, 41, 190)
    assert Step.parse(step.line()) == step
    assert Step.parse("[   12.3] " + step.line()) == step  # a console prefix is fine
    assert Step.parse("no step here") is None
    assert Step.parse(STEP_PREFIX + "{not json") is None
    assert Step.parse(STEP_PREFIX + "[1, 2]") is None
    assert Step.parse(STEP_PREFIX + '{"env": "vm"}') is None  # stage and text missing
    future = Step.parse(STEP_PREFIX + '{"env":"vm","stage":"phase","text":"t","new":1}')
    assert future == Step("vm", "phase", "t")  # fields a newer guest adds are ignored


def test_the_relay_turns_console_lines_into_vm_steps_across_chunk_boundaries() -> None:
    seen = Recorder()
    relay = ConsoleRelay(seen)
    out = io.StringIO()
    guest = StepLines(out)
    guest.step(Step("host", "phase", "a", "kmod-kthread", "pingpong", 1, 10, 0, 50))
    guest("a log line")
    guest.step(Step("host", "phase", "b", "spin-c", "pingpong", 1, 10, 1, 50))
    text = "HELLOBENCH-GUEST: ready root=overlay\n" + out.getvalue()
    for cut in range(0, len(text), 7):  # the console arrives in arbitrary pieces
        relay.write(text[cut : cut + 7])
    kinds = [(s.env, s.stage, s.impl, s.done) for s in seen.steps]
    assert kinds == [
        ("vm", "guest", None, None),
        ("vm", "phase", "kmod-kthread", 0),
        ("vm", "phase", "spin-c", 1),
    ]
    assert "ready" in seen.steps[0].text


def test_plain_lines_say_where_the_run_is() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)
    assert isinstance(display(console), PlainLines)  # not a terminal
    with PlainLines(console) as plain:
        plain("[host] a [bracketed] log line")
        plain.step(Step("host", "phase", "k", "ebpf-xdp", "pingpong rx@server", 2, 10, 5, 40))
        plain.step(Step("host", "phase", "k", "spin-c", "pingpong", 2, 10, 6, 40))
    text = out.getvalue()
    assert "[host] a [bracketed] log line" in text  # no markup eaten
    assert "[host] · ebpf-xdp pingpong rx@server · round 2/10 · 5/40 phases" in text
    assert "ETA" in text


def test_plain_lines_beat_in_a_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.cli.live.HEARTBEAT_S", 0.2)
    out = io.StringIO()
    with PlainLines(Console(file=out, width=200)) as plain:
        plain.step(Step("vm", "boot", "booting the guest", total=50))
        time.sleep(2.5)
    assert out.getvalue().count("(still at it)") >= 1


@pytest.mark.slow
def test_a_run_reports_each_phase_once_with_the_planned_total(tmp_path: Path) -> None:
    from bench.runner.config import RunConfig
    from bench.runner.orchestrate import run_all

    seen = Recorder()
    cfg = RunConfig(
        out_root=tmp_path, impls=("blocking-c",), modes=("pingpong", "flood"), trials=2,
        duration_s=0.1, warmup_s=0.0, env="host", calibrate=False, design="matrix",
    )  # fmt: skip
    run_all(cfg, seen)
    phases = [s for s in seen.steps if s.stage == "phase"]
    assert len(phases) == 4
    assert {s.total for s in phases} == {4}
    assert [s.done for s in phases] == [0, 1, 2, 3]
    assert [s.round for s in phases] == [1, 1, 2, 2] and {s.rounds for s in phases} == {2}
    assert seen.steps[-1].stage == "finish"


def test_the_live_display_draws_one_bar_per_environment() -> None:
    import re

    from bench.cli.live import LiveDisplay

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    shown = display(console)
    assert isinstance(shown, LiveDisplay)
    with shown:
        shown.step(Step("host", "phase", "k", "blocking-c", "pingpong", 1, 10, 0, 20))
        shown.step(Step("vm", "boot", "booting the guest", total=50))
        shown("[vm] a log line")
        shown.step(Step("vm", "phase", "k", "kmod-kthread", "pingpong", 2, 10, 7, 50))
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    last = text[text.rindex("blocking-c") - 40 :]  # the final frame: both bars
    assert "host" in last and "vm" in last and "kmod-kthread pingpong" in last
    assert "round 2/10" in last and "7/50" in last and "0/20" in last
    assert "[vm] a log line" in text
