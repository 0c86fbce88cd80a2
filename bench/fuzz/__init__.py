"""The hostile-input campaign: every impl must survive malformed datagrams.

- ``corpus``    a seeded, bounded stream of malformed HELLOs with tagged valid ones;
- ``exchange``  sending it to one server with paced buffers, classifying every reply;
- ``checks``    what must hold afterwards, and the verdict (FuzzResult);
- ``campaign``  impls started through the runner's lifecycle, in each topology;
- ``in_guest``  the same campaign inside a guest with a stock modular kernel.
"""
