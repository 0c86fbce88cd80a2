"""The machine a run measures on.

- ``capabilities``  what the running kernel and machine allow: root, loadable modules, BPF;
- ``description``   the environment record of results.json (``collect_*`` functions);
- ``metadata``      every key written about a machine: type, unit, formatter, identity;
- ``identity``      which machine a record describes (the registry's identity keys);
- ``kernel_log``    the kernel log, and the reports in it that mean the kernel is unwell.
"""
