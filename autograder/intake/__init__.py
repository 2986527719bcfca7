"""Submissions on their way in: ``collect`` (from nbgrader's exchange or LMS downloads into
autograder/submitted/), ``repair`` (a gradable copy of a broken submission, or the reason there is none) and
``scan`` (flags for code that tries to change how grading works). The submitted files are never changed."""
