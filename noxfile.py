"""nox sessions: bench, tests, lint, report, regress."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.default_venv_backend = "uv|virtualenv"  # uv when bootstrap installed it


@nox.session
def bench(session: nox.Session) -> None:
    """Measure every available impl on this host (and in a VM where needed); render the report."""
    session.install("-e", ".[uvloop]")
    session.run("python", "-m", "bench", "run", "--report", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite: unit, conformance of every impl, end-to-end, VM, benchmarks."""
    session.install("-e", ".[test]")
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--benchmark-disable",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy over the package, the impls' controllers and the tests; actionlint over
    the CI workflow."""
    session.install("-e", ".[lint,test]")
    session.run("ruff", "check", "bench", "tests", "impls", "noxfile.py")
    session.run("ruff", "format", "--check", "bench", "tests", "impls", "noxfile.py")
    session.run("mypy", "bench", "tests")
    for controller in sorted(Path("impls").glob("*/controller.py")):
        session.run("mypy", str(controller))
    session.run("actionlint", *sorted(str(p) for p in Path(".github/workflows").glob("*.yml")))


@nox.session
def report(session: nox.Session) -> None:
    """Render the HTML report of a run (default: the newest under results/)."""
    session.install("-e", ".")
    session.run("python", "-m", "bench", "report", *(session.posargs or [_newest_run()]))


@nox.session
def regress(session: nox.Session) -> None:
    """The CI guard: pytest-benchmark layer, then a short run compared with results/baseline;
    the pytest-benchmark JSON, summary.md and the github-action-benchmark files land in one
    folder."""
    session.install("-e", ".[test]")
    out = Path(session.create_tmp())
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "tests/benchmarks",
        "--benchmark-only", f"--benchmark-json={out / 'benchmark.json'}",
    )  # fmt: skip
    session.run(
        "python", "-m", "bench", "regress", "--out", str(out / "runs"), "--ci-out", str(out),
        *session.posargs,
    )  # fmt: skip


def _newest_run() -> str:
    runs = sorted(
        (p for p in Path("results").glob("*/results.json") if p.parent.name != "baseline"),
        key=lambda p: p.stat().st_mtime,
    )
    if not runs:
        raise SystemExit("no run under results/: run `nox -s bench` first")
    return str(runs[-1].parent)
