"""One SparkSession per kernel, set up for a laptop and for grading.

Where the session runs is chosen by the environment, so that the same notebook runs unchanged on a
laptop, a standalone cluster or a Spark Connect server:

* ``SPARK_REMOTE=sc://host:15002``: a Spark Connect client (no RDD API, no local JVM).
* ``SCALELAB_SPARK_MASTER=spark://host:7077`` (or ``local[4]``...): a classic session on that master.
* neither: ``local[*]``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from scalelab.engines import CONNECT_MODE_VARIABLES
from scalelab.engines import VARIABLES as ENGINE_VARIABLES
from scalelab.processes import run_group, tail

if TYPE_CHECKING:  # pyspark is imported only when a session is asked for
    from pyspark.sql import SparkSession

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
# For many short jobs on small data (the test suite, grading a class), a JVM that compiles with C1 only and
# collects with the serial collector starts and answers faster on 2 cores (bench/bench_spark_jvm.py:
# 23.5 -> 16.9 s for a session and eight small queries on a quiet machine).
# `make test` and `make grade` set SCALELAB_SPARK_JAVA_OPTIONS to it; students keep the JVM's defaults,
# which win on the larger jobs of the "Scale it up" sections.
QUICK_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
# Spark settings for the same many small queries: no code generation (interpreted plans), so a query's first
# run compiles nothing with Janino. The results are the same; students keep Spark's defaults. `make test` sets
# SCALELAB_SPARK_CONF to it ("key=value key=value"), and so do `make grade`'s grading processes for the kernels
# they start (its shared Connect servers keep the instructor's environment); every session, Connect server
# and spark-submit the course starts adds what that variable holds. Measured in docs/testing.md.
QUICK_SPARK_CONF = "spark.sql.codegen.wholeStage=false spark.sql.codegen.factoryMode=NO_CODEGEN"
# A class-data archive of the classes a Spark driver loads (JDK class-data sharing, made once by
# `make setup`: `python -m scalelab.spark archive`) lets a new driver map them instead of loading and
# verifying thousands of classes: bench/bench_spark_jvm.py. A JVM that cannot use it (another Java,
# another Spark) starts without it, silently; SCALELAB_SPARK_CDS=0 turns it off.
CDS_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")

_session: SparkSession | None = None


def pyspark_home() -> Path:
    """The installed pyspark's folder (spark-submit, spark-class, its data), found without importing pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("pyspark is not installed in this Python; run `make setup` (or pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations)))


def spark_master() -> str:
    return os.environ.get("SCALELAB_SPARK_MASTER", "local[*]")


def spark_remote() -> str | None:
    return os.environ.get("SPARK_REMOTE") or None


def _runs_on_this_machine(master: str) -> bool:
    if master.startswith("local"):
        return True
    host = master.split("://", 1)[-1].split(":", 1)[0]
    return host in LOOPBACK_NAMES


def _ui_enabled() -> bool:
    flag = os.environ.get("SCALELAB_SPARK_UI")
    if flag is not None:
        return flag not in ("0", "false", "no")
    return not os.environ.get("CI")  # no one looks at the UI in CI or grading


def java_options(class_archive: bool = False) -> str:
    """Options for every Spark JVM the course starts: quiet logs, then ``SCALELAB_SPARK_JAVA_OPTIONS``.

    With `class_archive`, for the JVMs that run on PySpark's own class path (drivers and executors),
    the class-data archive when there is one.
    """
    extra = os.environ.get("SCALELAB_SPARK_JAVA_OPTIONS", "")
    if class_archive and os.environ.get("SCALELAB_SPARK_CDS", "1") != "0" and class_archive_path().exists():
        extra = f"-XX:SharedArchiveFile={class_archive_path()} {CDS_QUIET} {extra}"
    return f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} {extra}".strip()


def extra_conf() -> dict[str, str]:
    """The settings in SCALELAB_SPARK_CONF ("key=value key=value"), added to every session the course starts."""
    conf = {}
    for item in os.environ.get("SCALELAB_SPARK_CONF", "").split():
        key, equals, value = item.partition("=")
        if not equals or not key.startswith("spark."):
            raise ValueError(f"SCALELAB_SPARK_CONF: {item!r} is not spark.KEY=VALUE; "
                             "write the settings as spark.a=1 spark.b=2, or unset the variable")
        conf[key] = value
    return conf


def class_archive_path() -> Path:
    """Where `python -m scalelab.spark archive` keeps the class-data archive: in the environment."""
    return Path(sys.prefix) / "share" / "scalelab" / "spark-classes.jsa"


def classic_conf(app_name: str, master: str) -> dict[str, str]:
    """The settings a classic (JVM-in-this-process) session starts with."""
    cores = os.cpu_count() or 2
    python = os.environ.get("PYSPARK_PYTHON", sys.executable)
    conf = {
        "spark.app.name": app_name,
        "spark.master": master,
        # few partitions: the lab data is small, and 200 tiny tasks per shuffle would dominate
        "spark.sql.shuffle.partitions": str(max(2, 2 * cores)),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # the progress bar and log4j warnings go to stderr, which nbgrader counts as a failure
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": java_options(class_archive=True),
        "spark.executor.extraJavaOptions": java_options(class_archive=True),
        "spark.driver.memory": os.environ.get("SCALELAB_SPARK_DRIVER_MEMORY", "2g"),
        "spark.pyspark.python": python,
        "spark.pyspark.driver.python": sys.executable,
        "spark.ui.enabled": "true" if _ui_enabled() else "false",
        "spark.ui.port": "0",  # any free port: several kernels can run side by side
    }
    if _runs_on_this_machine(master):
        # keep all traffic on loopback; a real cluster needs the driver's routable address instead
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    return {**conf, **extra_conf()}


@contextlib.contextmanager
def _ui_on_loopback(master: str) -> Iterator[None]:
    """While a driver JVM starts: SPARK_LOCAL_IP=127.0.0.1, unless set, for a master on this machine.

    Spark's web UI binds to $SPARK_LOCAL_IP, else to every interface, whatever spark.driver.bindAddress
    says; it has no setting of its own. SPARK_LOCAL_IP=0.0.0.0 (set before the first get_spark()) serves it to all.
    The JVM keeps the environment it started with; the kernel's own is given back afterwards.
    """
    if "SPARK_LOCAL_IP" in os.environ or not _runs_on_this_machine(master):
        yield
        return
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    try:
        yield
    finally:
        os.environ.pop("SPARK_LOCAL_IP", None)


def get_spark(app_name: str = "scalelab") -> SparkSession:
    """The kernel's SparkSession, started on first use (about 5-10 s for a classic session)."""
    global _session
    if _session is not None and not _is_stopped(_session):
        return _session
    remote = spark_remote()
    if remote:
        _session = _connect_session(app_name, remote)
    else:
        _session = _classic_session(app_name, spark_master())
    return _session


def _is_stopped(session: SparkSession) -> bool:
    try:
        if hasattr(session, "sparkContext") and not _is_connect(session):
            return session.sparkContext._jsc is None
        return bool(getattr(session, "is_stopped", False))
    except Exception:
        return True


def _is_connect(session: SparkSession) -> bool:
    return type(session).__module__.startswith("pyspark.sql.connect")


def _classic_session(app_name: str, master: str) -> SparkSession:
    from pyspark.sql import SparkSession

    from scalelab.java import ensure_java

    java = ensure_java()
    conf = classic_conf(app_name, master)
    # A running driver starts its Python workers with $PYSPARK_PYTHON (else `python3` on PATH, which may
    # lack pandas and pyarrow); spark.pyspark.python alone is read only by spark-submit's launcher.
    os.environ["PYSPARK_PYTHON"] = conf["spark.pyspark.python"]
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    with _ui_on_loopback(master):  # pyspark's java_gateway starts the driver JVM with os.environ
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    ui = session.sparkContext.uiWebUrl
    print(
        f"Spark {session.version} · master {session.sparkContext.master} · "
        f"{session.sparkContext.defaultParallelism} cores · {java.describe()}"
        + (f" · UI {ui}" if ui else "")
    )
    return session


def _connect_session(app_name: str, remote: str) -> SparkSession:
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(remote).appName(app_name).getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    print(f"Spark {session.version} · Spark Connect at {remote} (DataFrame and SQL API only, no RDDs)")
    return session


def stop_spark() -> None:
    """Stop the kernel's session (the closing cell of a lab calls this)."""
    global _session
    if _session is not None:
        _session.stop()
        _session = None


class SparkSubmitError(RuntimeError):
    """A spark-submit run failed or ran out of time; the message ends with the tails of its output.

    Both are shown: spark-submit passes the Python script's own stdout *and* stderr (tracebacks included)
    to its stdout, and keeps stderr for the JVM's messages.
    """


def spark_submit(
    script: str | os.PathLike[str],
    *args: str,
    master: str | None = None,
    timeout: float = 300,
    app_name: str = "scalelab-job",
) -> subprocess.CompletedProcess[str]:
    """Run a PySpark script as its own application, as ``spark-submit`` does on a cluster's edge node.

    The master is ``master`` or the session's (``SCALELAB_SPARK_MASTER``, else ``local[*]``); Java, Python and
    the quiet log settings are the ones ``get_spark`` uses. On a standalone cluster the job needs free cores:
    stop the notebook's own session first. A notebook on Spark Connect (``SPARK_REMOTE``) submits the job
    as a classic application all the same (spark-submit refuses a remote with a master).
    Raises ``SparkSubmitError`` on failure or timeout.
    """
    from scalelab.java import ensure_java

    ensure_java()
    master = master or spark_master()
    conf = classic_conf(app_name, master)
    command = [str(pyspark_home() / "bin" / "spark-submit"), "--master", master]
    for key, value in conf.items():
        if key not in ("spark.master", "spark.ui.enabled"):
            command += ["--conf", f"{key}={value}"]
    command += ["--conf", "spark.ui.enabled=false", str(script), *map(str, args)]
    # the same worker Python as get_spark's sessions; the job's driver runs this kernel's Python
    env = {**os.environ, "PYSPARK_PYTHON": conf["spark.pyspark.python"], "PYSPARK_DRIVER_PYTHON": sys.executable}
    # a notebook on Spark Connect still submits a classic job to `master`: drop what its session set
    for connect_variable in ("SPARK_REMOTE", *CONNECT_MODE_VARIABLES):
        env.pop(connect_variable, None)
    run = run_group(command, timeout, env=env)  # its own group: a timeout ends the JVM and Python
    if run.timed_out:
        raise SparkSubmitError(f"spark-submit {script} ran past {timeout:g} s:\n{_tails(run.stdout, run.stderr)}")
    if run.returncode != 0:
        raise SparkSubmitError(f"spark-submit {script} exited with status {run.returncode}:\n"
                               f"{_tails(run.stdout, run.stderr)}")
    return subprocess.CompletedProcess(command, run.returncode, run.stdout, run.stderr)


def _tails(out: str, err: str, lines: int = 20) -> str:
    return (f"--- stderr ---\n{tail(err, lines) or '(nothing)'}\n"
            f"--- stdout (the script's output) ---\n{tail(out, lines) or '(nothing)'}")


# What the archive's training run does: the kinds of work the labs do, so that their classes are in it.
_TRAINING_RUN = """
from pyspark.sql import Window, functions as F
from scalelab.spark import get_spark, stop_spark
spark = get_spark("scalelab-class-archive")
df = spark.range(50_000).withColumn("k", F.col("id") % 13).withColumn("v", F.rand(1))
df.groupBy("k").agg(F.sum("v"), F.avg("v"), F.count("*")).join(df.limit(100), "k").orderBy("k").collect()
df.withColumn("r", F.row_number().over(Window.partitionBy("k").orderBy("v"))).where("r < 3").toPandas()
spark.sparkContext.parallelize(range(1000), 4).map(lambda x: (x % 7, x)).reduceByKey(lambda a, b: a + b).collect()
spark.createDataFrame([(1, "a b"), (2, "c")], "id int, text string").select(F.explode(F.split("text", " "))).count()
stop_spark()
"""


def make_class_archive(timeout: float = 300) -> str:
    """Write the class-data archive with a short training run of Spark; returns what happened, in a line."""
    from scalelab.java import JavaNotFound, ensure_java

    try:
        ensure_java()
    except JavaNotFound as missing:
        return f"no Spark class archive: {missing}"
    target = class_archive_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    options = f"{os.environ.get('SCALELAB_SPARK_JAVA_OPTIONS', '')} -XX:ArchiveClassesAtExit={partial} {CDS_QUIET}"
    env = {**os.environ, "CI": "1", "SCALELAB_SPARK_CDS": "0", "SCALELAB_SPARK_JAVA_OPTIONS": options.strip()}
    for variable in ENGINE_VARIABLES:  # a local driver, whatever the shell points at
        env.pop(variable, None)
    run = run_group([sys.executable, "-c", _TRAINING_RUN], timeout, env=env)
    if run.timed_out or run.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        why = "it ran too long" if run.timed_out else tail(run.stderr, 3) or "this Java made none"
        return f"no Spark class archive ({why}); Spark starts without it, a few seconds slower"
    partial.replace(target)
    return f"Spark class archive: {target} ({target.stat().st_size / 2**20:.0f} MiB)"


if __name__ == "__main__":
    if sys.argv[1:] != ["archive"]:
        sys.exit("usage: python -m scalelab.spark archive   (write the class-data archive Spark drivers start from)")
    print(make_class_archive())
