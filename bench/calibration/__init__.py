"""Machine calibration: null syscall, context switch and wake-up cost, driver fidelity."""
