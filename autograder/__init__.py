"""The instructor's tools: notebook template and hygiene (``notebooks``), release via nbgrader, and the
command line ``python -m autograder``."""
