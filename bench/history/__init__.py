"""The history store: every run in one database (SQLite by default, PostgreSQL for a team),
its per-round values keyed by machine, kernel, configuration and commit, the change points
of each series over time, and the trend page.

``schema`` declares the tables, ``store`` adds runs and reads series back, ``trends`` finds
change points, ``page`` renders the trend page.
"""
