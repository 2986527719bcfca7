"""The instructor's authoring tools: the notebook template and hygiene (``notebooks``), running a notebook
(``execute``), drawing the figures (``images``) and releasing the student notebooks (``release``)."""
