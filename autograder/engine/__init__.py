"""The grading engine: grade every submission of an assignment with real nbgrader, in parallel, on this
machine or on a Dask cluster, with one writer of the course's grades.

- ``settings``: the course's folders on this machine, the options every worker grades with, the run;
- ``run``: a run from start to end: lock, what to grade (resume), progress, merge, summary, class report;
- ``executors``: where tasks run: ``LocalPool`` (processes here) or ``DaskCluster`` (``--scheduler``);
- ``task`` and ``folder``: what client and workers hand each other (a submission's files, the outcome);
- ``worker``: one worker process's private nbgrader course and one submission's flow through it;
- ``results``: from nbgrader's gradebook, logs and autograded notebook to plain data and the record;
- ``record``: the versioned per-submission record the report and the tests read;
- ``merge``: the one gradebook writer, and the gradebook snapshot the workers grade into;
- ``fingerprint``: what must be the same on every machine of a run;
- ``dask_worker``: what makes a Dask worker a grading worker (its preload and plugin).
"""
