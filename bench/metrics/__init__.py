"""Per-phase metric probes: syscalls, context switches, CPU time, BPF run time.

``probe.PhaseProbe`` brackets one measured phase and returns ``probe.PhaseMetrics``; the
other modules are its parts (perf events, /proc readers, tracepoints, the BPF stats
switch, the hooks held for a whole run).
"""
