"""The measuring client: a native hot loop (bench/native/hello_client.c) run from Python.

- ``modes``      pingpong | rate | flood;
- ``client``     DriverConfig → the client process → DriverResult;
- ``histogram``  HdrHistogram helpers (the client's buckets, percentiles, encoding).
"""
