"""Imported last in the fork server (runtime.local.fork_context): every object the preloads made
is moved out of the garbage collector's sight (gc.freeze) before the first child is forked.

A forked worker shares the server's pages until it writes to them; a full collection in the
child visits (and so writes the header of) every tracked object, copying nearly all of them:
with numba and the games loaded, a Crafter worker spent about 0.2 s of system time per episode
on those copies. Frozen objects are never collected, which costs nothing here: they live as
long as the server does.
"""

import gc

gc.freeze()
