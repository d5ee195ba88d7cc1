"""Existing engines read the dataset as is: Spark (local mode) and ClickHouse (chdb).

Both must give the requests and bytes per domain and date that ``cdnlogs query`` gives, on a
dataset with a compacted day, a day still in per-source files, and rejects under ``_rejects/``.
Spark starts slowly (~10 s): one module-scoped session. Spark reads the store through s3a with
hadoop-aws and the AWS SDK bundle that ``make spark-jars`` takes from PyPI.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cdnlogs.cli import cli
from cdnlogs.compaction import CompactOptions, compact_dataset
from cdnlogs.config import Settings
from cdnlogs.ingest import ingest_archive
from cdnlogs.manifest import Manifest
from cdnlogs.publish import publish_dataset
from cdnlogs.store import open_store
from tests.dataset_helpers import DAY_START, DOMAINS, TOTALS_SQL, add_source, small_archive
from tests.s3server import ACCESS_KEY, S3_BUCKET, SECRET_KEY, S3Server

Totals = dict[tuple[str, str], tuple[int, int]]
#: The exact glob of the data files; a looser ``*/*/*.parquet`` also matches _rejects/.
DATA_GLOB = "domain=*/date=*/*.parquet"
#: Debian's Java 17 (make test installs openjdk-17-jre-headless); Spark 4 needs 17 or 21.
JAVA_17 = sorted(Path("/usr/lib/jvm").glob("java-17-openjdk-*"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Totals]:
    """A dataset with one compacted day, one per-source day and rejects; ``cdnlogs query``'s
    totals of it."""
    out = tmp_path_factory.mktemp("engines") / "out"
    small_archive(out)
    # A file with lines no parser reads, so _rejects/ has files the loose glob would pick up.
    name = add_source(out, DOMAINS[1], DAY_START + timedelta(hours=5), 20, seed=4)
    local = next(out.glob(f"{DOMAINS[1]}/**/{name.removesuffix('.gz')}.log"))
    local.write_text(local.read_text() + "not a log line\nnor this\n")
    settings = Settings(out_dir=out)
    now = datetime(2024, 3, 3, 17, tzinfo=UTC)  # 2024-03-01 is settled, 2024-03-02 is not
    summary = ingest_archive(settings, now=now)
    assert summary.rejects >= 2
    with Manifest.open(settings.state_dir) as manifest:
        assert compact_dataset(settings.dataset_dir, manifest, now=now, options=CompactOptions())
    assert list(settings.dataset_dir.glob("_rejects/domain=*/*.parquet"))
    sql = TOTALS_SQL.format(logs="logs")
    result = CliRunner().invoke(
        cli, ["query", sql, "--out", str(out), "--format", "json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    names = list(rows[0])
    expected = {(r[names[0]], r[names[1]]): (r[names[2]], r[names[3]]) for r in rows}
    assert {day for _, day in expected} == {"2024-03-01", "2024-03-02"}
    return settings.dataset_dir, expected


#: hadoop-aws and the AWS SDK bundle for s3a:// (``make spark-jars`` puts them in the venv).
SPARK_JARS = Path(sys.prefix) / "spark-jars"
S3A_JARS = ("hadoop-aws-3.3.1.jar", "aws-java-sdk-bundle-1.11.901.jar")


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    if JAVA_17:
        os.environ.setdefault("JAVA_HOME", str(JAVA_17[0]))
    jars = [SPARK_JARS / name for name in S3A_JARS]
    missing = [str(j) for j in jars if not j.is_file()]
    assert not missing, f"{missing} missing: run `make spark-jars` (make test does)"
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("cdnlogs-test")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        # On the JVM's class path as it starts (local mode: the executor is the driver), so the
        # 190 MB bundle is not copied into each session as spark.jars would.
        .config("spark.driver.extraClassPath", ":".join(str(j) for j in jars))
        .getOrCreate()
    )
    yield session
    session.stop()


def test_spark_reads_the_dataset_root(spark: object, dataset: tuple[Path, Totals]) -> None:
    from pyspark.sql import SparkSession

    assert isinstance(spark, SparkSession)
    root, expected = dataset
    logs = spark.read.parquet(str(root))
    types = dict(logs.dtypes)
    assert (types["domain"], types["date"], types["ts"]) == ("string", "date", "timestamp")
    logs.createOrReplaceTempView("logs")
    rows = spark.sql(TOTALS_SQL.format(logs="logs")).collect()
    assert {(r[0], r[1]): (r[2], r[3]) for r in rows} == expected
    # ts is the same instant: the earliest request per domain, as cdnlogs sees it.
    first = spark.sql("SELECT min(ts) FROM logs").collect()[0][0]
    assert first.replace(tzinfo=UTC) >= DAY_START


def test_chdb_reads_the_hive_layout_with_the_exact_glob(dataset: tuple[Path, Totals]) -> None:
    import chdb

    root, expected = dataset

    def query(glob: str) -> Totals:
        source = f"file('{root}/{glob}', Parquet)"
        sql = (
            f"SELECT domain, toString(date), count(), sum(coalesce(response_bytes, 0)) "
            f"FROM {source} GROUP BY domain, date SETTINGS use_hive_partitioning = 1"
        )
        out = chdb.query(sql, "JSONCompact")
        return {(r[0], r[1]): (int(r[2]), int(r[3])) for r in json.loads(out.bytes())["data"]}

    assert query(DATA_GLOB) == expected
    described = (
        chdb.query(
            f"DESCRIBE file('{root}/{DATA_GLOB}', Parquet) SETTINGS use_hive_partitioning = 1",
            "CSV",
        )
        .bytes()
        .decode()
    )
    assert "DateTime64(6, 'UTC')" in described or "DateTime64(6,'UTC')" in described
    # The trap the docs warn about: */*/*.parquet also matches _rejects/domain=*/<stem>.parquet.
    with pytest.raises(RuntimeError, match="hive partitioning column date"):
        query("*/*/*.parquet")
    # ... and without hive partitioning it silently counts the rejected lines as requests.
    plain = "SETTINGS use_hive_partitioning = 0"
    loose = chdb.query(f"SELECT count() FROM file('{root}/*/*/*.parquet') {plain}", "CSV")
    rejected = chdb.query(f"SELECT count() FROM file('{root}/_rejects/*/*.parquet') {plain}", "CSV")
    requests = sum(n for n, _ in expected.values())
    assert int(loose.bytes()) == requests + int(rejected.bytes()) > requests


#: s3a's settings for an S3 server at ``{endpoint}`` (docs/engines.md has OSS's). The numbers
#: and the v1 credential provider are for hadoop-aws 3.3 under pyspark's Hadoop 3.4+, whose
#: defaults ("60s", SDK v2 provider classes) it cannot read; a matching hadoop-aws needs none.
S3A_SETTINGS = {
    "fs.s3a.endpoint": "{endpoint}",
    "fs.s3a.endpoint.region": "us-east-1",
    "fs.s3a.path.style.access": "true",
    "fs.s3a.access.key": ACCESS_KEY,
    "fs.s3a.secret.key": SECRET_KEY,
    "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    "fs.s3a.threads.keepalivetime": "60",
    "fs.s3a.multipart.purge.age": "86400",
    "fs.s3a.connection.timeout": "200000",
    "fs.s3a.connection.establish.timeout": "30000",
    # The server's port changes when a test restarts it: no file system cached across tests.
    "fs.s3a.impl.disable.cache": "true",
}


def test_spark_reads_the_store_through_s3a(
    spark: object, dataset: tuple[Path, Totals], s3: S3Server, tmp_path: Path
) -> None:
    """The dataset published to the S3 server, read by Spark at s3a://bucket/prefix directly:
    partition discovery over the store's listing, _rejects/ left out, the same totals."""
    from pyspark.sql import SparkSession

    assert isinstance(spark, SparkSession)
    root, expected = dataset
    settings = Settings(
        dataset=f"s3://{S3_BUCKET}/ds", store_endpoint=s3.endpoint, store_region="us-east-1"
    )
    store = open_store(settings, settings.dataset_url)
    with Manifest.open(tmp_path / "state") as manifest:
        publish_dataset(root, store, manifest)
    assert any(k.startswith("ds/_rejects/") for k in s3.objects(S3_BUCKET, "ds/"))
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in S3A_SETTINGS.items():
        conf.set(key, value.format(endpoint=s3.endpoint))
    gets = len([r for r in s3.faults.requests if r[0] == "GET"])
    spark.read.parquet(f"s3a://{S3_BUCKET}/ds").createOrReplaceTempView("published")
    rows = spark.sql(TOTALS_SQL.format(logs="published")).collect()
    assert {(r[0], r[1]): (r[2], r[3]) for r in rows} == expected
    assert len([r for r in s3.faults.requests if r[0] == "GET"]) > gets  # it read the store
