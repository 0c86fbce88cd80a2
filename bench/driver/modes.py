"""The driver's three ways of loading a server, named once for the whole suite.

- ``pingpong``: closed loop, one (or k) requests outstanding, per-request RTT;
- ``rate``: open loop at a fixed offered rate, latency from the scheduled send time;
- ``flood``: as fast as possible, replies per second and loss.
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["pingpong", "rate", "flood"]
MODES: tuple[Mode, ...] = get_args(Mode)
