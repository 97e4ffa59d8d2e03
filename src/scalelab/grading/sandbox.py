"""Student code in a bubblewrap sandbox while ``make grade`` grades it (autograder/README.md, "The sandbox").

What runs inside is the notebook's kernel and everything it starts (a Spark JVM, ``mpiexec`` and its
ranks, PoCL's threads, Dask's workers); nbgrader stays outside and talks to the kernel over ZMQ on
unix sockets (jupyter_client's ``ipc`` transport) in a folder of the kernel's own, the one host
folder it can write. Inside the sandbox:

* the file system is the OS (``/usr``, ``/etc``) and, read-only, the Python installation, the venv,
  the ``scalelab`` package, the course's datasets and the Java home; the home folder
  (``/home/student``, the working folder), ``/tmp`` and ``/dev/shm`` are private tmpfs of a fixed
  size, gone when the kernel ends. The instructor's notebooks, the gradebook, other submissions, the
  repository and the grader's home are simply not there;
* its own network namespace (only ``lo``, its own), pid, IPC and UTS namespaces;
* limits on processes and threads together (RLIMIT_NPROC) and on each process's address space
  (RLIMIT_AS), applied inside the namespaces so that they count this sandbox alone;
* a user without the grader's rights: the grader's own user when it is not root (in a user
  namespace), else a uid of its own for each sandbox, with no capabilities.

The grading process turns it on with SCALELAB_SANDBOX=1 in its environment (the batch grader does);
``preprocessors.ExecuteOnSharedEngines`` then starts every kernel through ``kernel_manager``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

ENABLE_VARIABLE = "SCALELAB_SANDBOX"  # "1" in a grading process's environment: its kernels are sandboxed
HOME = "/home/student"  # the kernel's home and working folder inside
CONNECT_PORT = 15002  # a lane's Spark Connect server, on the loopback of each sandbox of the lane
CONNECT_REMOTE = f"sc://127.0.0.1:{CONNECT_PORT}"  # what a kernel on a sandboxed lane connects to
# the grading worker's shared engines name a sandboxed lane's folder (connect_lanes.py) under this key
LANE = "sandbox_lane"
SERVER_DIR = "/srv/scalelab-connect"  # a lane server's own folder inside its sandbox: out of the shared /tmp
SOCKET_PATH_MAX = 107  # characters in a unix socket's path (Linux's sun_path, less its final NUL)
USER = "student"
# As root, each sandbox runs as a uid of its own from this range, unknown to the system: its process
# limit then counts that sandbox alone (root itself is exempt from RLIMIT_NPROC)
UID_BASE, UID_SPAN = 1_900_000_000, 100_000_000
INSTALL_HINT = ("apt-get install -y bubblewrap (Debian, Ubuntu; as root), dnf install bubblewrap (Fedora), "
                "pacman -S bubblewrap (Arch); macOS has none: grade on Linux, or pass --unsandboxed (make grade "
                "UNSANDBOXED=1) knowing that student code then runs with your rights")
# What student code could use to find the grader's files, what points at folders not in the sandbox,
# and JPY_PARENT_PID: ipykernel would compare it with its parent inside (bwrap's pid 1), find them
# different and stop at once (--die-with-parent ends the sandbox with the grading process instead)
_UNSET = ("JPY_PARENT_PID", "SCALELAB_ROOT", "SCALELAB_SENTINEL", "SCALELAB_GRADING_ENGINES", ENABLE_VARIABLE,
          "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR", "MPLCONFIGDIR",
          "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "PYTHONPYCACHEPREFIX", "PWD",
          "OLDPWD", "TMP", "TEMP", "MAIL")
# The top-level parts of the OS: a merged /usr makes most of them links into it
_SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_MOUNTED = ("/proc", "/dev", "/sys")  # made by bwrap itself


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use; SCALELAB_SANDBOX_MEMORY_MB, _PROCESSES and _DISK_MB change the defaults."""

    memory_mb: int = 8192  # address space of each process (a JVM sizes its heap to half of it)
    processes: int = 1024  # processes and threads together (a Spark JVM alone has about 100 threads)
    disk_mb: int = 1024  # each writable tmpfs: the home folder, /tmp and /dev/shm (they live in memory)

    @classmethod
    def from_environment(cls) -> Limits:
        defaults = cls()
        return cls(*(int(os.environ.get(f"SCALELAB_SANDBOX_{name.upper()}", getattr(defaults, name)))
                     for name in ("memory_mb", "processes", "disk_mb")))


def enabled() -> bool:
    return os.environ.get(ENABLE_VARIABLE) == "1"


def bwrap() -> str | None:
    return shutil.which("bwrap")


def readable_paths() -> list[Path]:
    """What the kernel reads besides the OS: this Python and its venv, the scalelab package, the
    course's datasets and the Java that Spark uses, each as the real folder (links resolved)."""
    import scalelab
    from scalelab.datasets import datasets_dir

    paths = [Path(sys.base_prefix), Path(sys.prefix), Path(scalelab.__file__).parent]
    with contextlib.suppress(FileNotFoundError):
        paths.append(datasets_dir())
    java = shutil.which("java", path=f"{os.environ.get('JAVA_HOME', '')}/bin:{os.environ.get('PATH', '')}")
    if java:
        paths.append(Path(java).resolve().parent.parent)
    found: list[Path] = []
    for path in (p.resolve() for p in paths if p.exists()):
        if any(path.is_relative_to(other) for other in found) or any(path.is_relative_to(top) for top in _SYSTEM):
            continue  # bound already, as part of a folder above it or of the OS
        found = [other for other in found if not other.is_relative_to(path)] + [path]
    return sorted(found)


def command(kernel: list[str], exchange: Path, limits: Limits, uid: int | None, readable: list[Path],
            lane: Path | None = None) -> list[str]:
    """`kernel` run in a sandbox whose one writable host folder is `exchange` (the connection file and
    the unix sockets). `uid`: the user to become inside when bwrap starts as root (None otherwise).
    With a `lane` (a sandboxed Spark Connect lane's folder, connect_lanes.py), the home folder and /tmp
    are the lane's, shared with its server, and the kernel reaches the server at CONNECT_REMOTE."""
    if lane is None:
        return _bwrap(limits, uid, readable, writable=[exchange]) + kernel
    relay = [sys.executable, "-m", "scalelab.grading.relay", f"tcp:{CONNECT_PORT}", f"unix:{lane_socket(lane)}", "--"]
    return _bwrap(limits, uid, readable, writable=[exchange], read_only=[lane / "run"], lane=lane) + relay + kernel


def server_command(server: list[str], workdir: Path, lane: Path, limits: Limits, uid: int | None,
                   readable: list[Path]) -> list[str]:
    """A lane's Spark Connect `server` (listening on 127.0.0.1:CONNECT_PORT of its own network) in a
    sandbox like its kernels': the same files at the same paths, the lane's home folder and /tmp, and
    its own `workdir` at SERVER_DIR (Spark's scratch and warehouse). Its relay makes the lane's socket
    once the server accepts connections."""
    relay = [sys.executable, "-m", "scalelab.grading.relay", f"unix:{lane_socket(lane)}", f"tcp:{CONNECT_PORT}", "--"]
    return (_bwrap(limits, uid, readable, writable=[workdir, lane / "run"], lane=lane, moved={workdir: SERVER_DIR})
            + relay + server)


def lane_socket(lane: Path) -> Path:
    return lane / "run" / "connect.sock"


def _bwrap(limits: Limits, uid: int | None, readable: list[Path], writable: list[Path],
           read_only: list[Path] = (), lane: Path | None = None, moved: dict[Path, str] | None = None) -> list[str]:
    """bwrap's arguments up to the command (see the module's docstring); `writable` and `read_only` are
    host folders bound at their own paths (or where `moved` says); the home folder and /tmp are private
    tmpfs, or `lane`'s. The first writable folder holds the sandbox's /etc/passwd and /etc/group."""
    # no cgroup namespace: Java 17 reads its cgroup v1 limits through paths that one breaks, and
    # Spark's SparkContext then fails (NullPointerException in jdk.internal.platform.CgroupUtil)
    args = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--hostname", "localhost", "--die-with-parent", "--new-session"]
    for top in _SYSTEM:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    accounts = writable[0]
    moved = moved or {}
    args += ["--ro-bind", str(accounts / "passwd"), "/etc/passwd", "--ro-bind", str(accounts / "group"), "/etc/group"]
    # /sys read-only for the CPU topology (PoCL, the JVM), without the host's network interfaces
    args += ["--proc", "/proc", "--dev", "/dev", "--ro-bind", "/sys", "/sys", "--tmpfs", "/sys/class/net"]
    made: set[str] = set()
    size = str(limits.disk_mb * 2**20)
    home_mode = "0700" if uid is None else "0777"  # bwrap as root makes the tmpfs root's: open it to the user
    for scratch, mode, shared in (("/tmp", "1777", "tmp"), ("/dev/shm", "1777", None), (HOME, home_mode, "home")):
        if lane is not None and shared is not None:
            args += _folders_above(scratch, made) + ["--bind", str(lane / shared), scratch]
        else:
            args += _folders_above(scratch, made) + ["--perms", mode, "--size", size, "--tmpfs", scratch]
    for path in readable:
        args += _folders_above(str(path), made) + ["--ro-bind", str(path), str(path)]
    for path in read_only:
        args += _folders_above(str(path), made) + ["--ro-bind", str(path), str(path)]
    for path in writable:
        inside = moved.get(path, str(path))
        args += _folders_above(inside, made) + ["--bind", str(path), inside]
    args += ["--chdir", HOME, "--setenv", "HOME", HOME, "--setenv", "TMPDIR", "/tmp", "--setenv", "USER", USER,
             "--setenv", "LOGNAME", USER]
    with contextlib.suppress(FileNotFoundError):
        from scalelab.datasets import datasets_dir

        args += ["--setenv", "SCALELAB_DATASETS", str(datasets_dir().resolve())]  # no repository to find it in
    for variable in _UNSET:
        args += ["--unsetenv", variable]
    if uid is not None:  # bwrap as root: become the sandbox's own user, keeping no capability
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--", "setpriv", f"--reuid={uid}",
                 f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    # a lane's shared folders are host folders, not tmpfs of a fixed size: each file at most the disk limit
    file_size = [f"--fsize={limits.disk_mb * 2**20}"] if lane is not None else []
    return args + ["--", "prlimit", f"--nproc={limits.processes}", f"--as={limits.memory_mb * 2**20}", "--core=0",
                   *file_size, "--"]


def _folders_above(path: str, made: set[str]) -> list[str]:
    """`--dir` for each folder above `path` not made yet and not part of the read-only OS: bwrap would
    make them 0700, closed to the user inside when it is not root."""
    out = []
    parts = Path(path).parts
    for depth in range(2, len(parts)):
        folder = str(Path(*parts[:depth]))
        if folder in made or any(folder == top or folder.startswith(top + "/") for top in _SYSTEM + _MOUNTED):
            continue
        made.add(folder)
        out += ["--perms", "0755", "--dir", folder]
    return out


def new_uid() -> int | None:
    """The user a new sandbox runs as when bwrap starts as root (a uid of its own); None otherwise."""
    return UID_BASE + secrets.randbelow(UID_SPAN) if os.geteuid() == 0 else None


def _write_accounts(exchange: Path, uid: int) -> None:
    """/etc/passwd and /etc/group inside: the user has a name and a home (Java and Hadoop ask for them)."""
    gid = uid if os.geteuid() == 0 else os.getegid()
    (exchange / "passwd").write_text(f"root:x:0:0::/root:/bin/sh\n{USER}:x:{uid}:{gid}::{HOME}:/bin/sh\n"
                                     f"nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n")
    (exchange / "group").write_text(f"root:x:0:\n{USER}:x:{gid}:\nnogroup:x:65534:\n")


def _short_temporary_folder() -> str:
    """The temporary folder, or /tmp where that one's path is too long for the unix sockets made in
    the folders below it."""
    base = tempfile.gettempdir()
    return "/tmp" if len(base) + len("/scalelab-kernel-12345678/kernel-ipc-12345") > SOCKET_PATH_MAX else base


@contextlib.contextmanager
def kernel_folder(uid: int | None) -> Iterator[Path]:
    """The host folder shared with one sandboxed kernel (or a lane's server), owned by its user, removed
    afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="scalelab-kernel-", dir=_short_temporary_folder()))
    try:
        _write_accounts(folder, uid if uid is not None else os.geteuid())
        if uid is not None:
            os.chown(folder, uid, uid)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_LANE_FOLDERS = {"home": 0o700, "tmp": 0o1777, "run": 0o700}  # the home folder, /tmp, the server's socket


@contextlib.contextmanager
def lane_folder(uid: int | None) -> Iterator[Path]:
    """The host folders of a sandboxed Spark Connect lane (connect_lanes.py), owned by the lane's user:
    its server and each kernel graded on it see `home` as their home folder and `tmp` as /tmp, so that a
    path means the same file to the notebook and to Spark; `run` holds the server's socket."""
    folder = Path(tempfile.mkdtemp(prefix="scalelab-lane-", dir=_short_temporary_folder()))
    try:
        for name, mode in _LANE_FOLDERS.items():
            (folder / name).mkdir()
            os.chmod(folder / name, mode)
            if uid is not None:
                os.chown(folder / name, uid, uid)
        yield folder
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder, onerror=_remove_anyway)


def empty_lane(lane: Path, bound: list[Path] | None = None) -> None:
    """What a submission left in the lane's home folder and /tmp, removed, whatever its permissions.

    Kept: the folders bwrap made there as mount points for what it binds below /tmp or the home folder
    (`bound`; by default the lane's socket folder and `readable_paths()`, e.g. a venv under /tmp):
    removing one on the host would take that mount away from the server's sandbox."""
    bound = [lane / "run", *readable_paths()] if bound is None else bound
    for name, inside in (("home", HOME), ("tmp", "/tmp")):
        _empty(lane / name, {path.relative_to(inside) for path in bound if path.is_relative_to(inside)})


def _empty(folder: Path, kept: set[Path]) -> None:
    """Remove everything in `folder` but the paths `kept` (relative to it) and the folders above them."""
    for entry in folder.iterdir():
        below = {path.relative_to(entry.name) for path in kept if path.parts[:1] == (entry.name,)}
        if Path(".") in below:
            continue  # a mount point
        if below:
            _empty(entry, below)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, onerror=_remove_anyway)
        else:
            entry.unlink()


def _remove_anyway(function, path, _error) -> None:
    """rmtree's retry for a folder whose owner (the lane's user, not root) closed it to writes."""
    os.chmod(os.path.dirname(path), 0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
    function(path)


def lane_user(lane: Path) -> int | None:
    """The user of a lane's sandboxes when bwrap starts as root (the owner of its folders), else None."""
    return (lane / "home").stat().st_uid if os.geteuid() == 0 else None


def undumpable(kernel: list[str]) -> list[str]:
    """`python -m MODULE ARGS` as a process whose memory no one in the sandbox can write (undumpable.py);
    any other command as it is."""
    if "-m" in kernel[:-1]:  # python [options] -m MODULE ARGS
        at = kernel.index("-m") + 1
        return [*kernel[:at], "scalelab.grading.undumpable", *kernel[at:]]
    return kernel


def kernel_manager(limits: Limits | None = None, lane: Path | None = None
                   ) -> tuple[type[AsyncKernelManager], contextlib.ExitStack]:
    """A kernel manager class whose kernels start in a sandbox of their own (on `lane`'s folders and
    server, when given), and what removes their folders once the notebook is done (close it after
    nbclient has shut the kernel down)."""
    limits = limits or Limits.from_environment()
    readable = readable_paths()
    cleanup = contextlib.ExitStack()

    class SandboxedKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            uid = new_uid() if lane is None else lane_user(lane)
            folder = cleanup.enter_context(kernel_folder(uid))
            super().__init__(transport="ipc", connection_file=str(folder / "kernel.json"), **kwargs)
            self._sandbox = (folder, uid)

        def write_connection_file(self, **kwargs) -> None:
            super().write_connection_file(**kwargs)
            folder, uid = self._sandbox
            if uid is not None:  # root wrote it 0600: the kernel's user must read it
                os.chown(self.connection_file, uid, uid)

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            # an interrupt as a message on the control channel: a signal to the process group would
            # reach bwrap, which ends the sandbox, and not the kernel (in a session of its own)
            self.kernel_spec.interrupt_mode = "message"
            folder, uid = self._sandbox
            return command(undumpable(super().format_kernel_cmd(extra_arguments)), folder, limits, uid, readable,
                           lane)

    return SandboxedKernelManager, cleanup


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str  # what ran, or why it could not
    seconds: float = 0.0  # how long a sandbox took to start and end


def check() -> Check:
    """Start one sandbox as a kernel would be started (same namespaces, mounts, user and limits) and
    run `python -c pass` in it."""
    if bwrap() is None:
        return Check(False, "bubblewrap (bwrap) is not installed")
    uid = new_uid()
    with kernel_folder(uid) as folder:
        run = command([sys.executable, "-c", "pass"], folder, Limits.from_environment(), uid, readable_paths())
        started = time.perf_counter()
        try:
            done = subprocess.run(run, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            return Check(False, f"bwrap could not run: {error}")
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        return Check(False, f"bwrap could not start a sandbox: {(done.stderr or done.stdout).strip()[-300:]}")
    version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
    return Check(True, f"{version}: a sandbox starts and ends in {seconds * 1000:.0f} ms", seconds)
