"""The schedule: trials are rounds, and within each round the impls (and each impl's
phases) come in a random order drawn from a recorded seed — the same seed, the same
schedule; rows in results.json follow it."""

from __future__ import annotations

from pathlib import Path

from bench.runner.measure import round_orders
from tests.bench_runs import bench_run


def test_every_round_is_a_permutation_and_the_seed_fixes_them() -> None:
    orders = round_orders(5, 20, seed=7, salt="host/lo")
    assert all(sorted(o) == list(range(5)) for o in orders)
    assert orders == round_orders(5, 20, seed=7, salt="host/lo")
    assert len({tuple(o) for o in orders}) > 1  # not one fixed order repeated
    assert orders != round_orders(5, 20, seed=8, salt="host/lo")
    assert orders != round_orders(5, 20, seed=7, salt="host/veth")
    firsts = {o[0] for o in orders}
    assert len(firsts) > 1  # no impl always goes first


def test_a_run_records_its_seed_and_follows_its_schedule(tmp_path: Path) -> None:
    impls = ["blocking-c", "spin-c", "blocking-py"]
    args = ["--mode", "pingpong", "--seed", "12345"]
    for impl in impls:
        args += ["--impl", impl]
    args += ["--duration", "0.2", "--warmup", "0.05", "--trials", "3", "--no-calibrate"]
    args += ["--env", "host"]
    run = bench_run(tmp_path, args)
    assert run.config["order_seed"] == 12345
    measured = [(r.trial, r.impl) for r in run.rows]
    expected = [
        (trial, impls[i])
        for trial, order in enumerate(round_orders(3, 3, 12345, "host/lo"))
        for i in order
    ]
    assert measured == expected
