"""The ingest: downloaded log files into the Parquet dataset (the write path, all of it).

* ``archive``: ``ingest_archive``, the whole archive per the ledger (idempotent per file), and
  ``run_ingest``, that and what follows it (compaction, publishing, dropping local copies).
* ``ingester``: ``Ingester``, one source file into its partition file(s), checked.
* ``fastpath``: the SQL DuckDB runs to parse a file at full speed.
* ``reference``: the reference parser's (``cdnlogs.logformat``) side, for the lines the fast
  path cannot vouch for.
* ``workers``: several files at once, one DuckDB connection per thread.

The layout it writes, and reading it back, are ``cdnlogs.dataset``'s.
"""

from cdnlogs.ingest.archive import IngestRun, IngestSummary, ingest_archive, run_ingest
from cdnlogs.ingest.ingester import DEFAULT_JOBS, FileIngest, Ingester, IngestOptions
from cdnlogs.ingest.reference import iter_lines

__all__ = [
    "DEFAULT_JOBS",
    "FileIngest",
    "IngestOptions",
    "IngestRun",
    "IngestSummary",
    "Ingester",
    "ingest_archive",
    "iter_lines",
    "run_ingest",
]
