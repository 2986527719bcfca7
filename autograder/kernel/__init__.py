"""How student code runs while it is graded: each notebook in its own kernel, started by ``launch.py`` (by
path, standard library only) with CPU and memory caps, inside the bubblewrap sandbox of ``sandbox.py``; and
``caps.py``, nbgrader's Execute preprocessor with a wall-time budget, output caps and the evidence rule,
which leaves what it saw in an ``ExecutionReport``.

Nothing is imported here: the launcher runs as a plain script next to ``sandbox.py``.
"""
