"""The HTML report of one run: summary, latency CDFs, load curves, costs, the claim, environment."""

from __future__ import annotations

from bench.report.render import build_page, main_report, render_report

__all__ = ["build_page", "main_report", "render_report"]
