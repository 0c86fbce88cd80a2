"""The rule calibration (bench/analysis/rule_calibration.py) as a terminal table."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from bench.analysis.rule_calibration import CHOICE, RuleCalibration


def calibration_table(calibration: RuleCalibration) -> Table:
    """One row per candidate factor and machine change: false alarms, then power."""
    slowdowns = sorted({s for r in calibration.rows for s in r.power})
    table = Table(
        title=f"the compare rule replayed on {len(calibration.runs)} runs "
        f"({calibration.pairs} ordered pairs), reference {calibration.reference}",
        box=box.SIMPLE,
    )
    table.add_column("factor", justify="right")
    table.add_column("raw check")
    table.add_column("machine change")
    table.add_column("A/A false alarms", justify="right")
    table.add_column("of the reference", justify="right")
    for s in slowdowns:
        table.add_column(f"caught {s:g}x", justify="right")
    for s in slowdowns:
        table.add_column(f"reference {s:g}x", justify="right")
    for row in calibration.rows:
        chosen = (row.factor, row.raw_check) == calibration.chosen or (
            row.other_machine and row.factor == calibration.chosen_other_machine
        )
        style = "bold" if chosen else None
        table.add_row(
            f"{row.factor:g}",
            row.raw_check,
            row.machine,
            row.false_alarms.describe(),
            row.reference_false_alarms.describe(),
            *(row.power[s].describe() for s in slowdowns),
            *(row.reference_power[s].describe() for s in slowdowns),
            style=style,
        )
    return table


def reference_table(calibration: RuleCalibration) -> Table:
    """The reference's own factor: A/A false alarms of the reference, then power."""
    slowdowns = sorted({s for r in calibration.reference_rows for s in r.power})
    table = Table(
        title=f"the reference {calibration.reference} judged raw against its own factor",
        box=box.SIMPLE,
    )
    table.add_column("reference factor", justify="right")
    table.add_column("A/A false alarms", justify="right")
    for s in slowdowns:
        table.add_column(f"caught {s:g}x", justify="right")
    for row in calibration.reference_rows:
        chosen = row.reference_factor == calibration.chosen_reference
        table.add_row(
            f"{row.reference_factor:g}",
            row.false_alarms.describe(),
            *(row.power[s].describe() for s in slowdowns),
            style="bold" if chosen else None,
        )
    return table


def print_calibration(calibration: RuleCalibration, console: Console) -> None:
    if not console.is_terminal:
        console = Console(width=240, no_color=True)
    console.print(calibration_table(calibration))
    if calibration.reference_rows:
        console.print(reference_table(calibration))
    console.print(
        f"held: alpha {calibration.rule.alpha:g}, reference factor "
        f"{calibration.rule.reference_factor:g}, counts ±{calibration.rule.count_tolerance:.0%}; "
        f"slowed: {', '.join(calibration.targets)} (times x s, rates / s); rounds per run "
        f"{', '.join(map(str, calibration.rounds))}",
        soft_wrap=True,
    )
    for note in calibration.notes:
        console.print(f"note: {note}", soft_wrap=True)
    if calibration.chosen is not None:
        factor, raw_check = calibration.chosen
        console.print(f"chosen ({CHOICE}): factor {factor:g}, raw check {raw_check}",
                      soft_wrap=True)  # fmt: skip
    if calibration.chosen_reference is not None:
        console.print(f"chosen for the reference: factor {calibration.chosen_reference:g}",
                      soft_wrap=True)  # fmt: skip
    if calibration.chosen_other_machine is not None:
        console.print(f"chosen between machines: factor {calibration.chosen_other_machine:g}",
                      soft_wrap=True)  # fmt: skip
