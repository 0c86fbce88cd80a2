"""The measuring client: a native hot loop (bench/native/hello_client.c) run from Python."""

from __future__ import annotations

from bench.driver.client import (
    DriverConfig,
    DriverError,
    DriverResult,
    Mode,
    driver_binary,
    run_driver,
)

__all__ = ["DriverConfig", "DriverError", "DriverResult", "Mode", "driver_binary", "run_driver"]
