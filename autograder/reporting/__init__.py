"""What grading produces for people: the class report for the instructor (``report``, from the grading
records) and the students' feedback without hidden tests (``feedback``: nbgrader preprocessor, exporter)."""
