"""A budget's defaults are written once: the run's options take them, and their help says
them, for every budget."""

from __future__ import annotations

import pytest

from bench.cli import build_parser
from bench.cli.run import run_config
from bench.runner.budget import BUDGETS, defaults_text

FLAGS = {"quick": ["--quick"], "default": [], "full": ["--full"]}


@pytest.mark.parametrize("budget", sorted(BUDGETS))
def test_a_run_without_options_takes_its_budget(budget: str) -> None:
    spend = BUDGETS[budget]
    standard = run_config(build_parser().parse_args(["run", *FLAGS[budget]]))
    assert standard.budget == budget
    assert standard.duration_s == spend.duration_s
    assert standard.warmup_s == spend.warmup_s
    assert standard.claim_duration_s == spend.claim_duration_s
    assert standard.trials == spend.claim_trials
    assert standard.matrix_trials == spend.survey_trials
    assert standard.rate_fractions == spend.rate_fractions
    assert standard.sample_cap == spend.sample_cap
    assert standard.modes == spend.modes
    matrix = run_config(build_parser().parse_args(["run", "--impl", "blocking-c",
                                                   *FLAGS[budget]]))  # fmt: skip
    assert matrix.design == "matrix" and matrix.trials == spend.matrix_trials


def test_the_help_states_every_budget_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for field in ("duration_s", "warmup_s", "claim_duration_s", "claim_trials", "matrix_trials",
                  "survey_trials", "rate_fractions", "sample_cap"):  # fmt: skip
        assert f"({defaults_text(field)})" in text, field
    assert "(default 0.2, quick 0.2, full 0.5)" in text  # the claim's phase seconds
    assert "(default 10, quick 3, full 10)" in text  # the claim's rounds
