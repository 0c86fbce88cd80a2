"""The machine a run measures on.

- ``capabilities``  what the running kernel and machine allow: root, loadable modules, BPF;
- ``description``   the environment record of results.json (``collect_*`` functions);
- ``kernel_log``    the kernel log, and the reports in it that mean the kernel is unwell.
"""
