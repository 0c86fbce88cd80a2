"""Calibration of the machine a run measures on, recorded with every environment.

- ``syscall``    the cost of a null syscall (bench/native/calib.c);
- ``ctxswitch``  a context switch and a cross-CPU wake-up (lmbench-style pipe ping-pong);
- ``fidelity``   the suite's driver against sockperf on the same machine;
- ``crosscheck`` the driver against an independent client on the impls it measures;
- ``record``     all of them as the ``calibration`` record of an environment.
"""
