"""nbgrader configuration for the course (used by `make release`, `make grade` and the formgrader).

The course root is autograder/course/ (git-ignored: gradebook, submissions, feedback); the source
notebooks are solutions/ and the student release is labs/, both at the top of the repository.
"""

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)

from scalelab.grading.course import cell_timeout, root
from scalelab.grading.guards import RedactHiddenTests, SkipRiskyCells
from scalelab.grading.preprocessors import (
    AppendSentinel,
    DemoteStderr,
    ExecuteOnSharedEngines,
    RequireSentinel,
    ScrubTracebacks,
    SkipDemonstrations,
    TruncateOutputs,
)

COURSE = root()  # this repository, or the private course in $SCALELAB_ROOT
c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "scalelab"
c.CourseDirectory.root = str(COURSE / "autograder" / "course")
c.CourseDirectory.source_directory = str(COURSE / "solutions")
c.CourseDirectory.release_directory = str(COURSE / "labs")
# solutions/NN-name/README.md is the instructor guide: never released to students
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*", "README.md"]

c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError(\"replace this line with your answer\")"
}

# Per-cell time limit; a cell that runs longer is interrupted and its tests fail.
c.Execute.timeout = cell_timeout()  # SCALELAB_CELL_TIMEOUT, default course.CELL_TIMEOUT_S
c.Execute.interrupt_on_timeout = True
c.LimitOutput.max_lines = 200

c.Autograde.sanitize_preprocessors = [
    ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata, AppendSentinel,
    SkipDemonstrations,
    SkipRiskyCells,  # a student's cell that could change how the grader's cells run is not run (scan.py)
]
c.Autograde.autograde_preprocessors = [
    ExecuteOnSharedEngines,  # nbgrader's Execute; Spark labs may share a warm server
    RequireSentinel,
    DemoteStderr,
    ClearMetadataPreprocessor,
    LimitOutput,
    TruncateOutputs,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
c.GenerateFeedback.preprocessors = [GetGrades, RedactHiddenTests, ClearHiddenTests, ScrubTracebacks,
                                   CSSHTMLHeaderPreprocessor]
