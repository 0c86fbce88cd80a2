"""The HTML report of one run: summary, latency CDFs, load curves, costs, the claim, environment.

- ``render``   the page (jinja2 template, self-contained, inline SVG) from a loaded Run;
- ``tables``   the summary tables (medians, "—" with a footnote for what was not measured);
- ``figures``  matplotlib figures as inline SVG, one colour per impl by family.
"""
