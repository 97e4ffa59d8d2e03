"""The helper package: cheap to import, and each helper does what a notebook relies on."""

import subprocess
import sys

import pytest

from scalelab import checks


def test_importing_scalelab_starts_no_engine():
    code = (
        "import sys, psutil, scalelab, scalelab.spark, scalelab.dask, scalelab.mpi, scalelab.opencl, "
        "scalelab.checks, scalelab.doctor, scalelab.java, scalelab.clusters, scalelab.datasets, "
        "scalelab.bench, scalelab.grading, scalelab.grading.batch, scalelab.grading.cases\n"
        "heavy = [m for m in ('pyspark', 'mpi4py.MPI', 'pyopencl', 'distributed', 'py4j') if m in sys.modules]\n"
        "children = psutil.Process().children(recursive=True)\n"
        "print(heavy, len(children))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] 0", out


def test_check_equal_message_names_expected_and_actual():
    with pytest.raises(checks.CheckFailed) as failure:
        checks.check_equal([3, 1], [3, 0], "words", hint="split()")
    message = str(failure.value)
    assert "words" in message and "[3, 0]" in message and "[3, 1]" in message and "Hint: split()" in message


def test_check_equal_on_mappings_names_the_keys(capsys):
    with pytest.raises(AssertionError) as failure:
        checks.check_equal({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 1}, "counts")
    assert "missing keys ['c']" in str(failure.value) and "'b': expected 3, got 2" in str(failure.value)
    checks.check_equal({"a": 1}, {"a": 1}, "same counts")
    assert "✓ same counts" in capsys.readouterr().out


def test_a_hint_can_follow_from_the_wrong_value():
    def hint(got):
        return "lowercase the words" if any(w != w.lower() for w in got) else "add the counts"

    with pytest.raises(checks.CheckFailed, match="Hint: lowercase the words"):
        checks.check_equal({"The": 1}, {"the": 1}, "counts", hint=hint)
    with pytest.raises(checks.CheckFailed, match="Hint: add the counts"):
        checks.check_equal({"the": 1}, {"the": 2}, "counts", hint=hint)


def test_check_count_hints_by_direction(capsys):
    hints = {"too_many": "malformed lines kept?", "too_few": "a good line dropped?"}
    with pytest.raises(checks.CheckFailed, match=r"(?s)expected 10, got 12 \(more.*malformed lines kept"):
        checks.check_count(12, 10, "rows", **hints)
    with pytest.raises(checks.CheckFailed, match=r"(?s)expected 10, got 9 \(fewer.*a good line dropped"):
        checks.check_count(9, 10, "rows", **hints)
    checks.check_count(10, 10, "rows", **hints)
    assert "✓ rows" in capsys.readouterr().out


def test_check_type_and_close():
    with pytest.raises(checks.CheckFailed, match="expected a float, got a str"):
        checks.check_type("1.0", float, "mean")
    with pytest.raises(checks.CheckFailed, match="expected 4.5"):
        checks.check_close(4.4, 4.5, "mean")
    with pytest.raises(checks.CheckFailed, match="expected a number"):
        checks.check_close(None, 4.5, "mean")
    checks.check_close(4.5 + 1e-12, 4.5, "mean")


def test_check_array_close_reports_first_bad_index():
    import numpy as np

    with pytest.raises(checks.CheckFailed, match=r"1 of 4 elements differ.*index \(2,\)"):
        checks.check_array_close(np.array([1, 2, 9, 4.0]), np.arange(1, 5.0), "vector")
    with pytest.raises(checks.CheckFailed, match="shape"):
        checks.check_array_close(np.zeros(3), np.zeros(4), "vector")


def test_messages_show_numpy_numbers_as_plain_numbers():
    import numpy as np

    with pytest.raises(checks.CheckFailed) as failure:
        checks.check_equal([np.float64(1.5), np.int64(2)], [1.5, 3], "pair")
    assert "[1.5, 2]" in str(failure.value) and "np." not in str(failure.value)
    with pytest.raises(checks.CheckFailed) as failure:
        checks.check_array_close(np.array([1.0, 2.5]), np.array([1.0, 2.0]), "vector")
    assert "expected 2.0, got 2.5" in str(failure.value)
    with pytest.raises(checks.CheckFailed) as failure:
        checks.check_record({"mean": np.float64(0.25)}, {"mean": 0.5}, "stats")
    assert "'mean': expected 0.5, got 0.25" in str(failure.value)


def test_check_array_close_takes_spark_vectors_and_a_column_of_them(capsys):
    from pyspark.ml.linalg import Vectors

    checks.check_array_close([Vectors.dense(1.0, 2.0), Vectors.sparse(2, {1: 4.0})], [[1, 2], [0, 4]], "matrix")
    checks.check_array_close(Vectors.dense(0.5, 1.5), [0.5, 1.5], "vector")
    assert capsys.readouterr().out.count("✓") == 2
    with pytest.raises(checks.CheckFailed, match=r"index \(1, 0\): expected 0, got 3.0"):
        checks.check_array_close([Vectors.dense(1.0, 2.0), Vectors.dense(3.0, 4.0)], [[1, 2], [0, 4]], "matrix")


def test_check_same_items_and_raises():
    with pytest.raises(checks.CheckFailed, match=r"missing \['c'\]"):
        checks.check_same_items(["a", "b"], ["b", "a", "c"], "words")
    checks.check_same_items(["a", "b"], ["b", "a"], "words")
    with pytest.raises(checks.CheckFailed, match="expected ValueError, but it returned 1"):
        checks.check_raises(ValueError, lambda: 1, "empty input")


def test_doctor_reports_every_part_with_versions():
    from scalelab import doctor

    text, healthy = doctor.report()
    for name in ("Python", "Cores", "Memory", "Java", "Spark", "MPI", "OpenCL", "Dask", "Jupyter"):
        assert f"ok {name}" in text, text
    assert "pyspark 4.3.0" in text and "mpi4py 4.1.2" in text and "MPICH" in text
    assert healthy


def test_doctor_says_how_to_get_a_browser_for_the_browser_tests_and_needs_none(monkeypatch):
    from scalelab import doctor

    monkeypatch.setattr(doctor, "find_chromium", lambda: None)
    monkeypatch.setattr(doctor, "findings", lambda: [doctor.check_browser()])
    text, healthy = doctor.report()
    assert "-- Browser" in text and "fix: apt-get install -y chromium" in text
    assert healthy  # the labs need no browser


def test_doctor_says_how_to_fix_what_is_missing(monkeypatch):
    from scalelab import doctor

    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda name: "" if name in ("mpi4py", "pyopencl") else real(name))
    text, healthy = doctor.report()
    assert not healthy
    assert "-- MPI        mpi4py is not installed" in text and "pip install mpich mpi4py" in text
    assert "-- OpenCL     pyopencl is not installed" in text


def test_recording_sees_the_calls_an_answer_makes_and_puts_the_method_back():
    class Session:
        def sql(self, query):
            return f"result of {query}"

    session = Session()
    with checks.recording(session, "sql") as calls:
        assert session.sql("SELECT 1") == "result of SELECT 1"  # behaves as before
    assert [(c.args, c.result) for c in calls] == [(("SELECT 1",), "result of SELECT 1")]
    assert "sql" not in vars(session) and session.sql("x") == "result of x"
    method = vars(Session)["sql"]
    with pytest.raises(ValueError), checks.recording(Session, "sql") as calls:  # a class's own method
        Session().sql("SELECT 2")
        raise ValueError("the answer failed")
    assert len(calls) == 1 and vars(Session)["sql"] is method  # put back, even after a failure


def test_a_timeout_kills_what_left_the_process_group_too(tmp_path):
    """run_group's time limit also ends a child in a session of its own (as a Jupyter kernel is): left alive, it
    kept the output pipes open and run_group waited for it."""
    import os
    import sys
    import time

    from scalelab.processes import run_group

    pid_file = tmp_path / "pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    parent = ("import subprocess, sys, time\n"
              f"subprocess.Popen([sys.executable, '-c', {child!r}], start_new_session=True)\n"
              "time.sleep(600)\n")
    assert run_group([sys.executable, "-c", parent], timeout=5).timed_out
    pid = int(pid_file.read_text())
    for _ in range(50):  # the kill is sent before run_group returns; give the kernel a moment to reap it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"the child in its own session ({pid}) outlived the time limit")


def test_check_frame_compares_columns_then_rows(capsys):
    import pandas as pd

    want = pd.DataFrame({"country": ["DE", "FR", "US"], "n": [2, 1, 3], "mean": [3.5, 4.0, 2.25]})
    checks.check_frame(want.iloc[::-1].astype({"n": float}), want, "per country")  # any order, 2 == 2.0
    assert "✓ per country" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match=r"missing \['mean'\], unexpected \['avg'\]"):
        checks.check_frame(want.rename(columns={"mean": "avg"}), want, "per country")
    with pytest.raises(checks.CheckFailed, match=r"in another order"):
        checks.check_frame(want[["n", "country", "mean"]], want, "per country", ordered=True)
    with pytest.raises(checks.CheckFailed, match=r"(?s)expected 3 rows, got 2 \(fewer.*Hint: a left join"):
        checks.check_frame(want.head(2), want, "per country", hint="a left join keeps them")
    wrong = want.assign(mean=[3.5, 4.1, 2.25])
    with pytest.raises(checks.CheckFailed, match=r"1 of 3 rows differ.*'FR'.*4\.0.*4\.1.*columns \['mean'\]"):
        checks.check_frame(wrong, want, "per country")
    checks.check_frame(want.assign(mean=want["mean"] + 1e-9), want, "within the tolerance")
    with pytest.raises(checks.CheckFailed, match=r"rows differ \(in order"):
        checks.check_frame(want.iloc[::-1], want, "sorted by country", ordered=True)
    missing = pd.DataFrame({"k": [1, 2], "v": [None, "x"]})
    checks.check_frame(missing.assign(v=[float("nan"), "x"]), missing, "NaN and None are both missing")
    with pytest.raises(checks.CheckFailed, match="expected a DataFrame, got a list"):
        checks.check_frame([1, 2], want, "per country")


class _FakeSparkFrame:
    def __init__(self, frame):
        self.frame = frame

    def toPandas(self):  # noqa: N802 - Spark's name
        return self.frame


def test_check_frame_collects_a_spark_dataframe():
    import pandas as pd

    want = pd.DataFrame({"user_id": [1, 2], "views": [3, 4]})
    checks.check_frame(_FakeSparkFrame(want.iloc[::-1]), want, "views per user")
    with pytest.raises(checks.CheckFailed, match=r"'views': 5"):
        checks.check_frame(_FakeSparkFrame(want.assign(views=[3, 5])), want, "views per user")


def test_check_record_names_the_fields_that_differ_with_their_hints():
    checks.check_record({"rank": 1, "mean": 2.0 + 1e-12, "extra": "ignored"}, {"rank": 1, "mean": 2.0}, "rank 1")
    hints = {"mean": "divide by the global N", "var": "squared deviations"}
    with pytest.raises(checks.CheckFailed, match=r"(?s)'mean': expected 2\.0, got 2\.5.*Hint: divide by the global N$"):
        checks.check_record({"mean": 2.5, "var": 1.0}, {"mean": 2.0, "var": 1.0}, "rank 1", hint=hints)
    with pytest.raises(checks.CheckFailed, match=r"missing fields \['var'\]"):
        checks.check_record({"mean": 2.0}, {"mean": 2.0, "var": 1.0}, "rank 1")
    with pytest.raises(checks.CheckFailed, match=r"'counts': expected \[1, 2\], got \[1, 3\]"):
        checks.check_record({"counts": [1, 3]}, {"counts": [1, 2]}, "histogram")
    with pytest.raises(checks.CheckFailed, match="expected a dict"):
        checks.check_record([1.0], {"mean": 1.0}, "rank 0")


def test_last_json_reads_each_ranks_last_line_and_says_when_it_is_not_json():
    from scalelab.mpi import MPIResult

    result = MPIResult(3, 0, ['warming up\n{"rank": 0, "sum": 6}', '{"rank": 1}', "done"], ["", "", ""])
    assert checks.last_json(result) == {"rank": 0, "sum": 6}
    with pytest.raises(checks.CheckFailed, match=r"(?s)rank 2's last line.*got 'done'.*json\.dumps"):
        checks.each_rank_json(result)
    assert checks.each_rank_json(MPIResult(2, 0, ["1", "[2]"], ["", ""])) == [1, [2]]
    with pytest.raises(checks.CheckFailed, match="rank 1's last line of output: rank printed nothing"):
        checks.last_json(MPIResult(2, 0, ["1", ""], ["", ""]), rank=1)
