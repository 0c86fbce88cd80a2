"""What a run's numbers say, computed from results only (bench/results), rendered elsewhere.

- ``primary``      the pre-registered question (bench/question.py), evaluated: its family of
                   contrasts at rx on the server's CPU with simultaneous intervals;
- ``answer``       the answer's sentences, generated from the primary family alone;
- ``effects``      every other pairable difference, exploratory, with q-values;
- ``prediction``   what the calibration predicts an effect to be, with its spread;
- ``equivalence``  a prediction judged by two one-sided tests: held, failed, inconclusive;
- ``dose``         dose-response slopes of a server option;
- ``summary``      medians over trials per configuration, failures and skips;
- ``compare``      two runs: which changes beyond a factor are significant;
- ``stats``        the statistics they share (paired t, Bonferroni, Benjamini-Hochberg,
                   Mann-Whitney U).
"""
