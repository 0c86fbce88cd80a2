"""The bottom layer: operating-system helpers that import nothing of the rest of the suite.

- ``files``      atomic writes (temporary file in the same folder, fsync, rename);
- ``ledger``     the record of every system object a run creates, and the sweep that
                 removes what a dead run left behind;
- ``processes``  processes the suite owns: identity, terminate, wait, kill;
- ``netns``      network namespaces: entering one, ``ip netns exec``, removing one;
- ``ports``      a free UDP port on loopback.
"""
