"""Two hosts: the server side on another machine, reached through OpenSSH.

The driver runs here; on the server host ``python -m bench agent`` answers JSON lines on
one ssh connection's stdin/stdout (protocol.py): it describes its machine, builds and
starts impls, runs the server-side probes around each phase, and cleans up after itself
when its stdin closes or it is signalled.  Round-trip times are measured here only."""
