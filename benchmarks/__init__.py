"""Benchmarks that print their figures (``make bench``, ``make bench-grading``) and the simulated course
and class they grade (``simulate``, which the tests use too). Nothing here is part of the grader."""
