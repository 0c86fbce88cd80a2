"""A run's results: what the runner writes and every reader reads, and nothing else.

- ``rows``          the typed records: PhaseRow (one measured phase), Configuration
                    (what the trials of one configuration share), Skip;
- ``descriptions``  the impls (as their manifests said) and environments a run describes;
- ``metrics``       the metric registry: each metric named once, with unit and direction;
- ``run``           Run: load (any folder a user would give), validate, migrate, save;
- ``frame``         the pandas view: one row per phase; grouping, trials and medians;
- ``schema``        the JSON Schemas (schema/results-v*.json) and validation;
- ``migrate``       older schemas to the current one.
"""
