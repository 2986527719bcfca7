"""nbgrader's configuration, mapping its course directory onto this repository.

  source (instructor's notebooks, solutions and hidden tests)  -> solutions/NN_topic/
  release (what students get)                                   -> notebooks/NN_topic/
  submitted / autograded / feedback (never committed)           -> autograder/{submitted,autograded,feedback}/
  gradebook                                                     -> autograder/gradebook.db

nbgrader reads this file when it runs with autograder/ as its working directory (the Makefile and
`python -m autograder` do that) or when autograder/ is on JUPYTER_CONFIG_PATH (`make lab` does that).
Paths are relative to the folder above this file, so a copy of the course folder grades on its own.
"""

import sys
from pathlib import Path

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

COURSE_ROOT = Path(__file__).resolve().parent.parent

c.CourseDirectory.root = str(COURSE_ROOT)
c.CourseDirectory.course_id = "torch-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "autograder/submitted"
c.CourseDirectory.autograded_directory = "autograder/autograded"
c.CourseDirectory.feedback_directory = "autograder/feedback"
c.CourseDirectory.db_url = f"sqlite:///{COURSE_ROOT / 'autograder' / 'gradebook.db'}"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "*.png.tmp"]

# Each cell gets at most this many seconds when nbgrader runs a notebook (autograde, validate).
c.Execute.timeout = 60
# Grade cells with no points get none; a failing test cell scores 0 (nbgrader's default).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# LMS downloads (`make grade GRADE_ARGS="--zip FILE..."`, nbgrader zip_collect) go to
# autograder/downloaded/NN_topic/archive/; the student id is the file name's first part, before the
# notebook's name and any numeric ids: alice_01_linear.ipynb, alice_12345_67890_01_linear.ipynb.
c.ZipCollectApp.downloaded_directory = "autograder/downloaded"
c.FileNameCollectorPlugin.named_regexp = r".*/(?P<student_id>[^/_]+)_(?:\d+_)*?(?P<file_id>\d\d_\w+\.ipynb)$"

# Feedback shows scores, visible tests and check messages, never hidden-test source
# (autograder/reporting/feedback.py).
# nbgrader imports the preprocessor by name, so the course folder goes on sys.path: nbgrader runs from
# autograder/, JupyterLab or the grading command, and only the last one starts in the course folder.
if str(COURSE_ROOT) not in sys.path:
    sys.path.append(str(COURSE_ROOT))
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "autograder.reporting.feedback.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
