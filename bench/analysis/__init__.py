"""What a run's numbers say, computed from results only (bench/results), rendered elsewhere.

- ``summary``  medians over trials per configuration, failures and skips;
- ``claim``    the claim under test: savings of the kernel-side impls and where they come from;
- ``compare``  two runs: which changes beyond a factor are significant;
- ``stats``    the statistics they share (bootstrap intervals, Mann-Whitney U).
"""
