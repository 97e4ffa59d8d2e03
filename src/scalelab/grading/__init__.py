"""The instructor side: release, batch grading, feedback and the grading-case runner.

* ``course``: where assignments and notebooks are; ``release()``; ``validate()``.
* ``preprocessors``: the nbgrader steps that close the known grading traps.
* ``submissions``: reading a class's notebooks from nbgrader's layout, a flat LMS export or a zip.
* ``batch``: grading them all, one isolated nbgrader run each, into a CSV and feedback pages.
* ``cases``: proving that grading is right, with the cases in autograder/cases/.
"""
