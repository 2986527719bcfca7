"""The instructor's tools, ``python -m autograder COMMAND`` (the Makefile calls it):

- ``engine/``: grading (parallel nbgrader, here or on a Dask cluster, one gradebook writer, records);
- ``kernel/``: how student code runs (kernel launcher, bubblewrap sandbox, caps and the evidence rule);
- ``intake/``: submissions coming in (collect, repair, scan);
- ``reporting/``: the class report and the students' feedback;
- ``authoring/``: the notebooks' template and hygiene, figures, release;
- ``nbgrader_config.py`` (nbgrader's configuration for this course) and ``nbgrader_cli.py`` (the one runner
  of nbgrader's command line).
"""
