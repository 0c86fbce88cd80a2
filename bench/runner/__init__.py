"""Running a measurement: the run's configuration and budget, its design (blocks and
rounds), each impl's lifecycle, the phases with their probes, and the environments (host,
the VM guest, or the server host of a two-host run) merged into one results file."""
