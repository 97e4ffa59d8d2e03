"""Student code graded in a bubblewrap sandbox reaches nothing it must not (autograder/README.md, "The sandbox").

One batch of the light trap notebook (tests/fixtures/trap-course.txt) grades honest students side by
side with attackers whose answer cells try, each as a student would: to read the instructor's
notebooks, the gradebook, other students' submissions, the repository and the grader's home; to
change the gradebook; to reach a server this test runs on the host's 127.0.0.1; to list the network
interfaces and the processes; to kill the grading process; to fork without end, to fill the disk and
to hold its grading process past the time limit in C code that ignores interrupts.
Each attack prints what it observed, which the student's feedback page shows; each attacker also
answers correctly, and scores exactly what that answer deserves, as the honest students do.

The tests that start a sandbox skip, saying why, where none can start; with CI_REQUIRE_SANDBOX=1
(.ci/run sets it) they fail instead.
"""

import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import nbformat
import psutil
import pytest
from test_grading import (
    FULL,
    _answered,
    _assert_stopped_and_graded_on_what_ran,
    _auto,
    _grade_stubborn_class,
    _trap_course,
)

from scalelab.grading import sandbox
from scalelab.grading.batch import UNSANDBOXED_NOTE, grade_batch, main
from scalelab.paths import repo_root

REPO = repo_root()
CHECK = sandbox.check()


def _needs_a_sandbox():
    if CHECK.ok:
        return
    if os.environ.get("CI_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"CI_REQUIRE_SANDBOX=1, but no sandbox can start here: {CHECK.detail}")
    pytest.skip(f"no sandbox can start here ({CHECK.detail}); to run these tests: {sandbox.INSTALL_HINT}")


# ---- the command, without starting anything ---------------------------------------------------------

LIMITS = sandbox.Limits(memory_mb=2048, processes=300, disk_mb=64)


def _command(uid=None, limits=LIMITS):
    readable = [Path("/opt/python"), REPO / ".venv", REPO / "src" / "scalelab"]
    return sandbox.command(["python", "-m", "ipykernel_launcher"], Path("/tmp/scalelab-kernel-x"), limits, uid,
                           readable)


def _pairs(args, option):
    return [(args[i + 1], args[i + 2]) for i, arg in enumerate(args) if arg == option]


def test_the_sandbox_binds_only_what_the_kernel_needs_and_writes_one_host_folder():
    args = _command()
    assert {"--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent"} <= set(args)
    assert _pairs(args, "--bind") == [("/tmp/scalelab-kernel-x", "/tmp/scalelab-kernel-x")]  # the only rw host folder
    read_only = {source for source, _ in _pairs(args, "--ro-bind")}
    assert {str(REPO / ".venv"), str(REPO / "src" / "scalelab"), "/usr", "/etc"} <= read_only
    for secret in (REPO, REPO / "solutions", REPO / "autograder", REPO / "src", Path.home(), Path("/root")):
        assert str(secret) not in read_only, secret
    tmpfs = [args[i + 1] for i, arg in enumerate(args) if arg == "--tmpfs"]
    assert tmpfs == ["/sys/class/net", "/tmp", "/dev/shm", sandbox.HOME]
    assert args.count(str(64 * 2**20)) == 3  # each writable tmpfs has the disk limit as its size
    assert args[args.index("--chdir") + 1] == sandbox.HOME
    assert ("HOME", sandbox.HOME) in _pairs(args, "--setenv")
    unset = {args[i + 1] for i, arg in enumerate(args) if arg == "--unsetenv"}
    assert {"SCALELAB_ROOT", "SCALELAB_SENTINEL", "JPY_PARENT_PID"} <= unset


def test_the_limits_apply_inside_and_root_becomes_a_user_of_its_own():
    args = _command()
    limits = args[args.index("prlimit"):]
    assert limits[:5] == ["prlimit", "--nproc=300", f"--as={2048 * 2**20}", "--core=0", "--"]
    assert limits[5:] == ["python", "-m", "ipykernel_launcher"]
    assert "setpriv" not in args and "--cap-add" not in args  # not root: bwrap's user namespace, the user's own uid
    as_root = _command(uid=1_900_000_123)
    switch = as_root[as_root.index("setpriv"):as_root.index("prlimit")]
    assert switch == ["setpriv", "--reuid=1900000123", "--regid=1900000123", "--clear-groups", "--inh-caps=-all",
                      "--bounding-set=-all", "--no-new-privs", "--"]
    assert [as_root[i + 1] for i, arg in enumerate(as_root) if arg == "--cap-add"] == ["CAP_SETUID", "CAP_SETGID"]


def test_folders_above_a_bound_path_are_made_open_and_once():
    args = _command()
    made = [args[i + 1] for i, arg in enumerate(args) if arg == "--dir"]
    assert len(made) == len(set(made))
    assert str(REPO) in made and "/opt" in made and "/usr" not in made  # the OS is bound, not made
    assert args[args.index("--dir") - 1] == "0755"


def test_a_kernel_folder_is_short_enough_for_unix_sockets_whatever_the_temporary_folder(monkeypatch, tmp_path):
    deep = tmp_path / ("x" * 80)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with sandbox.kernel_folder(None) as folder:
        assert len(str(folder / "kernel-ipc-12345")) <= sandbox.SOCKET_PATH_MAX and (folder / "passwd").exists()
    assert not folder.exists()


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SCALELAB_SANDBOX_PROCESSES", "77")
    monkeypatch.setenv("SCALELAB_SANDBOX_DISK_MB", "5")
    assert sandbox.Limits.from_environment() == sandbox.Limits(memory_mb=sandbox.Limits().memory_mb, processes=77,
                                                               disk_mb=5)


def test_what_the_kernel_may_read_is_never_the_course():
    readable = sandbox.readable_paths()
    assert Path(sandbox.__file__).resolve().parent.parent in readable  # the scalelab package, read-only
    for path in readable:
        assert not REPO.resolve().is_relative_to(path), path  # never the repository or a folder above it
        assert not path.is_relative_to(REPO / "solutions") and not path.is_relative_to(REPO / "autograder")


# ---- where no sandbox can start --------------------------------------------------------------------

def test_make_grade_refuses_to_grade_without_a_sandbox_unless_told(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "check", lambda: sandbox.Check(False, "bubblewrap (bwrap) is not installed"))
    assert main([str(tmp_path)]) == 2
    said = capsys.readouterr().err
    assert "no sandbox can start" in said and "apt-get install -y bubblewrap" in said and "UNSANDBOXED=1" in said
    assert main([str(tmp_path), "--unsandboxed", "--reports", str(tmp_path / "reports")]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("WARNING: grading without a sandbox")


def test_doctor_checks_that_a_sandbox_starts_and_says_how_to_install_one(monkeypatch):
    from scalelab import doctor

    monkeypatch.setattr(sandbox, "check", lambda: sandbox.Check(False, "bubblewrap (bwrap) is not installed"))
    missing = "\n".join(doctor.check_sandbox().lines())
    assert missing.startswith("-- Sandbox") and "fix: apt-get install -y bubblewrap" in missing
    monkeypatch.undo()
    _needs_a_sandbox()
    found = doctor.check_sandbox()
    assert found.ok and "bubblewrap" in found.detail


# ---- the attacks, in one batch ---------------------------------------------------------------------

SINGLE_SPACE = "def words_per_line(lines):\n    return [len(line.split(' ')) for line in lines]\n"
RIGHT_WORDS = "def words_per_line(lines):\n    return [len(line.split()) for line in lines]\n"
RIGHT_TOTAL = "def total_words(lines):\n    return sum(words_per_line(lines))\n"
RIGHT_MEAN = "def mean_length(words):\n    return sum(map(len, words)) / len(words) if words else 0.0\n"

# Each attack prints one line "ATTACK <what>: <what it observed>"; "LEAKED" only where it got through.
READER = """import glob, os, signal, socket, sqlite3
def _try_read(what, paths):
    for path in paths:
        try:
            data = open(path, 'rb').read()
        except OSError as error:
            continue
        print(f"ATTACK {{what}}: LEAKED {{len(data)}} bytes of {{path}}")
        return
    print(f"ATTACK {{what}}: blocked, none of {{len(paths)}} paths readable")
_scan = glob.glob({scratch!r} + '/**', recursive=True) + glob.glob({course!r} + '/**', recursive=True)
_try_read('solutions', [{solution!r}, {repo_solution!r}] + [p for p in _scan if p.endswith('.ipynb')])
_try_read('gradebook', [p for p in _scan if p.endswith('gradebook.db')] + [{course!r} + '/gradebook.db'])
_try_read('other submissions', [{other!r}] + glob.glob({submissions!r} + '/*'))
_try_read('feedback', glob.glob({reports!r} + '/**/*.html', recursive=True) + [{reports!r} + '/grades.csv'])
_try_read('repository', [{config!r}, {readme!r}])
_try_read('grader home', [{planted!r}, os.path.expanduser('~/secret.txt')])
_changed = 0
for _path in [p for p in _scan if p.endswith('gradebook.db')]:
    try:
        with sqlite3.connect(_path) as _db:
            _changed += _db.execute("UPDATE grade SET manual_score = 99").rowcount
    except sqlite3.Error:
        pass
print(f"ATTACK gradebook change: {{'LEAKED' if _changed else 'blocked'}}, {{_changed}} grades changed")
_client = socket.socket()
_client.settimeout(5)
try:
    _client.connect(('127.0.0.1', {port}))
    print("ATTACK host server: LEAKED, connected")
except OSError as error:
    print(f"ATTACK host server: blocked ({{type(error).__name__}})")
_names = [name for _, name in socket.if_nameindex()]
print("ATTACK interfaces:", " ".join(_names), "/", " ".join(os.listdir('/sys/class/net')))
_seen = []
for _pid in [p for p in os.listdir('/proc') if p.isdigit()]:
    try:
        _seen.append(open(f'/proc/{{_pid}}/cmdline', 'rb').read())
    except OSError:
        pass
_grader = any(b'scalelab.grading.worker' in c or b'nbgrader' in c for c in _seen)
print(f"ATTACK processes: {{'LEAKED' if _grader else 'blocked'}}, {{len(_seen)}} visible")
try:  # a path the scan of the text can't read: memory written under the grader's checks, without ctypes
    with open('/proc/self/' + 'mem', 'r+b') as _mem:
        _x = b'untouched'
        _mem.seek(id(_x) + 32)  # CPython: a bytes object's data, 32 bytes in
        _mem.write(b'TOUCHED!!')
    print(f"ATTACK own memory: LEAKED, {{_x!r}}")
except OSError as error:
    print(f"ATTACK own memory: blocked ({{type(error).__name__}})")
try:
    os.kill(os.getppid(), signal.SIGKILL)
    print(f"ATTACK kill the parent: sent to pid {{os.getppid()}}")
except OSError as error:
    print(f"ATTACK kill the parent: blocked ({{type(error).__name__}})")
"""

FORKER = """import os, signal, time
_children = []
try:
    while True:
        _pid = os.fork()
        if _pid == 0:
            time.sleep(60)
            os._exit(0)
        _children.append(_pid)
except OSError as error:
    print(f"ATTACK fork: stopped after {len(_children)} processes ({type(error).__name__})")
for _pid in _children:
    os.kill(_pid, signal.SIGKILL)
    os.waitpid(_pid, 0)
"""

FILLER = """import os
for _folder in ('.', '/tmp', '/dev/shm'):
    _path = os.path.join(_folder, 'ballast')
    _written = 0
    try:
        with open(_path, 'wb') as _file:
            while _written < 2**40:
                _written += _file.write(b'0' * 2**20)
                _file.flush()
    except OSError as error:
        print(f"ATTACK fill {_folder}: stopped after {_written // 2**20} MiB ({error.strerror})")
    os.remove(_path)
"""


@pytest.fixture
def host_server():
    """A TCP server on the host's 127.0.0.1 that counts the connections it gets."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


@pytest.mark.slow
def test_attacks_from_a_submission_are_stopped_and_honest_grades_are_exact(tmp_path, monkeypatch, host_server,
                                                                          request):
    _needs_a_sandbox()
    port, accepted = host_server
    root = tmp_path / "course"
    monkeypatch.setenv("SCALELAB_ROOT", str(root))
    solution, lab = _trap_course(root)
    # every temporary folder of the batch and its grading processes, which the attack scans; short, as
    # the kernels' unix sockets are made in it
    scratch = Path(tempfile.mkdtemp(prefix="sbx-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    home = tmp_path / "home"  # the grader's home, with a secret in it
    home.mkdir()
    (home / "secret.txt").write_text("the grader's secret")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SCALELAB_SANDBOX_PROCESSES", "200")
    monkeypatch.setenv("SCALELAB_SANDBOX_DISK_MB", "32")
    folder, reports = tmp_path / "submissions", tmp_path / "reports"
    folder.mkdir()
    nbformat.write(nbformat.read(solution, 4), folder / "alice_99-traps.ipynb")
    nbformat.write(_answered(solution, lab, {"traps-words": SINGLE_SPACE}), folder / "carol_99-traps.ipynb")
    reader = READER.format(scratch=str(scratch), course=str(root), solution=str(solution),
                           repo_solution=str(REPO / "solutions" / "00-setup" / "00-setup.ipynb"),
                           other=str(folder / "alice_99-traps.ipynb"), submissions=str(folder),
                           reports=str(reports), config=str(REPO / "autograder" / "nbgrader_config.py"),
                           readme=str(REPO / "README.md"), planted=str(home / "secret.txt"), port=port)
    nbformat.write(_answered(solution, lab, {"traps-words": reader + RIGHT_WORDS}), folder / "mallory_99-traps.ipynb")
    nbformat.write(_answered(solution, lab, {"traps-total": FORKER + RIGHT_TOTAL, "traps-words": SINGLE_SPACE}),
                   folder / "fred_99-traps.ipynb")
    nbformat.write(_answered(solution, lab, {"traps-mean": FILLER + RIGHT_MEAN}), folder / "dina_99-traps.ipynb")
    busy = "sum(range(10**15))  # C code holding the GIL, far longer than the notebook may take\n"
    nbformat.write(_answered(solution, lab, {"traps-words": busy + RIGHT_WORDS}), folder / "olga_99-traps.ipynb")

    rows = {r.student: r for r in grade_batch(folder, reports, workers=2, cell_timeout=60, notebook_timeout=20)}

    why = {student: row.message for student, row in rows.items()}  # shown when an assertion fails
    assert _auto(rows["alice"]) == FULL and _auto(rows["carol"]) == {**FULL, "traps-words-tests": 0.0}, why
    assert _auto(rows["mallory"]) == FULL and _auto(rows["dina"]) == FULL, why
    assert _auto(rows["fred"]) == {**FULL, "traps-words-tests": 0.0}, why  # his wrong answer costs its points only
    assert rows["olga"].status == "error" and "grading stopped after 20 s" in rows["olga"].message, why
    assert all(UNSANDBOXED_NOTE not in row.message for row in rows.values())
    observed = {student: _attack_lines(reports / "feedback" / student / "99-traps.html") for student in rows
                if student != "olga"}  # no feedback page for an error row
    mallory = observed["mallory"]
    for what in ("solutions", "gradebook", "other submissions", "feedback", "repository", "grader home"):
        assert mallory[what].startswith("blocked, none of"), (what, mallory[what])
    assert mallory["gradebook change"] == "blocked, 0 grades changed"
    assert mallory["host server"] == "blocked (ConnectionRefusedError)" and accepted == []
    assert mallory["interfaces"] == "lo / "  # its own loopback; /sys shows none of the host's
    assert mallory["processes"] == "blocked, 2 visible"  # the sandbox's pid 1 and the kernel
    assert mallory["own memory"] == "blocked (PermissionError)"  # the kernel is not dumpable
    # its parent is the sandbox's pid 1: a signal from inside can't end it (or, as root, it isn't the user's)
    assert mallory["kill the parent"] in {"sent to pid 1", "blocked (PermissionError)"}
    forked = observed["fred"]["fork"]
    assert forked.startswith("stopped after") and int(forked.split()[2]) < 200, forked
    for place in (".", "/tmp", "/dev/shm"):  # each a 32 MiB tmpfs
        filled = observed["dina"][f"fill {place}"]
        assert filled.endswith("MiB (No space left on device)") and 28 <= int(filled.split()[2]) <= 32, filled
    assert not any("LEAKED" in line for lines in observed.values() for line in lines.values())
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if str(scratch) in " ".join(p.info["cmdline"] or [])]
    assert left == []  # no sandbox, kernel or forked child outlives the batch, olga's stopped one included


@pytest.mark.slow
@pytest.mark.timeout(300)  # far below the notebook limit (600 s): the batch never waits for it
def test_a_sandboxed_cell_that_ignores_the_interrupt_is_stopped_with_its_sandbox(tmp_path, monkeypatch, request):
    """A cell past its limit that ignores SIGINT (one after starting a child that leaves the kernel's
    session) gets its sandbox killed a few seconds later; the notebook is graded on what ran, its row
    says which cell hit the time limit, and the honest student of the batch gets full points."""
    _needs_a_sandbox()
    root = tmp_path / "course"
    monkeypatch.setenv("SCALELAB_ROOT", str(root))
    solution, lab = _trap_course(root)
    rows, left = _grade_stubborn_class(solution, lab, tmp_path, monkeypatch, request, sandbox=True)
    _assert_stopped_and_graded_on_what_ran(rows)
    assert all(UNSANDBOXED_NOTE not in row.message for row in rows.values())
    assert left == []  # no sandbox, kernel or hidden child outlives the batch


def _attack_lines(page: Path) -> dict[str, str]:
    """The attacks' observations, as the student's feedback page shows them."""
    import html
    import re

    text = html.unescape(page.read_text())  # an output's first line opens its <pre>; the code's lines have spans
    return dict(re.findall(r"^(?:<pre>)?ATTACK ([^:<\n]+): ([^<\n]*)$", text, re.MULTILINE))


# ---- a sandboxed Spark Connect lane: what one submission leaves, the next never meets ---------------

LANE_ATTACKER = r'''
import os, socket, subprocess
from pyspark.sql.functions import udf
from scalelab.spark import get_spark
spark = get_spark()
spark.range(3).write.saveAsTable("left_table")
spark.range(3).createOrReplaceGlobalTempView("left_global")
open("left_in_home.txt", "w").write("mine")
open("/tmp/left_in_tmp.txt", "w").write("mine")
spark.range(3).write.parquet("/tmp/left_by_spark")  # Spark writes where the notebook reads: one /tmp
print("SEEN by the kernel:", sorted(os.listdir("/tmp/left_by_spark"))[-1])
try:
    print("LEAKED", spark.read.text({secret!r}).collect())
except Exception as error:
    print("BLOCKED read through Spark:", type(error).__name__)

@udf("string")
def attack(x):
    import os, socket, subprocess
    subprocess.Popen(["sleep", "600"], start_new_session=True)  # left to watch the next submission
    with socket.socket() as s:
        s.settimeout(5)
        reached = s.connect_ex(("127.0.0.1", {port})) == 0
    return f"host server reached={{reached}} interfaces={{sorted(os.listdir('/sys/class/net'))}}"

print("UDF:", spark.range(1).select(attack("id")).first()[0])
'''

LANE_NEXT = r'''
import os
from pyspark.sql.functions import udf
from scalelab.spark import get_spark
spark = get_spark()

@udf("string")
def processes(x):
    import os
    seen = []
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            seen.append(open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].decode())
        except OSError:
            pass
    return " ".join(sorted(os.path.basename(c) for c in seen))

print("NEXT tables:", [t.name for t in spark.catalog.listTables()], spark.catalog.listTables("global_temp"))
print("NEXT home:", os.listdir("."), "tmp:", [n for n in os.listdir("/tmp") if n.startswith("left")])
print("NEXT server processes:", spark.range(1).select(processes("id")).first()[0])
'''


def _on_lane(lane: Path, code: str) -> str:
    """`code` run as a kernel of the lane would run (its sandbox, SPARK_REMOTE); its output."""
    import subprocess
    import sys

    with sandbox.kernel_folder(sandbox.lane_user(lane)) as folder:
        run = sandbox.command([sys.executable, "-c", code], folder, sandbox.Limits.from_environment(),
                              sandbox.lane_user(lane), sandbox.readable_paths(), lane)
        done = subprocess.run(run, env={**os.environ, "SPARK_REMOTE": sandbox.CONNECT_REMOTE}, capture_output=True,
                              text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_a_sandboxed_connect_lane_keeps_the_host_out_and_submissions_apart(tmp_path, host_server):
    """The lane's server runs student queries and UDFs in a sandbox of its own: no host file, no host
    server. Between two submissions the lane is cleared of tables, files and left-behind processes."""
    _needs_a_sandbox()
    from scalelab.grading.connect_lanes import ConnectLanes

    port, accepted = host_server
    secret = tmp_path / "secret.txt"
    secret.write_text("the grader's secret")
    with ConnectLanes(1, sandboxed=True) as lanes:
        with lanes.lane() as lane:
            first = _on_lane(Path(lane.address), LANE_ATTACKER.format(secret=str(secret), port=port))
        with lanes.lane() as lane_again:
            second = _on_lane(Path(lane_again.address), LANE_NEXT)
    assert lane_again.address == lane.address  # the same server, cleared
    assert "SEEN by the kernel: part-" in first and "LEAKED" not in first, first
    assert "BLOCKED read through Spark: AnalysisException" in first, first  # no such path in its sandbox
    assert "UDF: host server reached=False interfaces=[]" in first and accepted == [], first
    assert "NEXT tables: [] []" in second and "NEXT home: [] tmp: []" in second, second
    processes = second.split("NEXT server processes:")[1].split()
    assert "sleep" not in processes and "java" in processes, processes


def test_emptying_a_lane_keeps_the_mount_points_of_what_its_sandboxes_bind(tmp_path):
    """A venv under /tmp is bound inside the lane's /tmp: the folders bwrap made for it must stay, or
    the server's sandbox loses its Python (found when the suite ran from a clone in /tmp)."""
    lane = tmp_path / "lane"
    for name in ("home", "tmp", "run"):
        (lane / name).mkdir(parents=True)
    (lane / "tmp" / "w" / "clone" / ".venv").mkdir(parents=True)  # bwrap's mount point for /tmp/w/clone/.venv
    (lane / "tmp" / "w" / "left.txt").write_text("a submission's file next to it")
    (lane / "tmp" / "left").mkdir()
    (lane / "tmp" / "left" / "part-0").write_text("x")
    (lane / "home" / "out.csv").write_text("x")
    os.chmod(lane / "tmp" / "left", 0o500)  # closed by its owner: removed all the same
    sandbox.empty_lane(lane, [Path("/tmp/w/clone/.venv"), Path("/usr/lib/jvm")])
    left = sorted(str(p.relative_to(lane)) for p in lane.rglob("*"))
    assert left == ["home", "run", "tmp", "tmp/w", "tmp/w/clone", "tmp/w/clone/.venv"]
