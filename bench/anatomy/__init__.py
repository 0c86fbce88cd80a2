"""The anatomy of a round trip: per-request stage timestamps of sampled pingpong requests,
taken with BPF (tp_btf tracepoints, libbpf, CO-RE) in a pass of their own, never in a timed
phase.  The stages partition each traced round trip, so they sum exactly to it.

``build`` compiles hb_anatomy.bpf.c and its loader (anatomyctl.c), ``events`` reads the
loader's records, ``stages`` turns one request's events into its stages, ``summary`` gives
their percentiles and the tail's composition, ``tracer`` runs the loader as an owned
process (its bpf_links die with it), ``measure`` runs one impl's untraced and traced passes.
"""
