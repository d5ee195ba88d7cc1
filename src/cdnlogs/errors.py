"""Exceptions cdnlogs can raise, and the exit statuses they map to.

The whole tree::

    CdnLogsError                      exit 1 unless a subclass says otherwise
    ├── UsageError                    2  bad option value the CLI parser could not catch
    ├── ConfigError                   3  bad config file, key or value
    ├── CredentialsError              3  no usable credential in the chain
    ├── ApiError                      4  the provider refused a call (code, message, request id)
    │   ├── ApiAuthError              4  signature, access key, token, permission
    │   ├── ApiNotFoundError          4  unknown domain
    │   └── ApiThrottledError         4  still throttled after every retry
    ├── TransferError                 5  one download failed (the run goes on; the run exits 5)
    │   ├── IncompleteDownloadError   5  fewer/more bytes than LogSize, or a bad gzip stream
    │   ├── UnsafeNameError           5  a LogName from the network that cannot be a plain file name
    │   ├── UrlExpiredError           5  the signed URL expired or was refused (403): re-list once
    │   ├── RemoteNotFoundError       5  the log host keeps answering 404 for the file
    │   ├── RedirectRefusedError      5  the log host redirected a signed URL to another host
    │   └── RetriesExceededError      5  gave up after the retry budget; carries the last exception
    ├── PartialSyncError              5  some files failed after retries; the rest were kept
    │   ├── CorruptFilesError         5  `verify`: files missing or corrupt (marked for download)
    │   ├── PruneIncompleteError      5  `prune`: some files could not be removed
    │   └── IngestIncompleteError     5  `ingest` (or `sync --ingest`): some files not ingested
    ├── ReconcileShortError           6  an hour or day holds less than the provider counted
    ├── ArchivePathError              1  --out (or a directory in it) cannot be a directory here
    ├── StoreError                    4  the object store refused a call or cannot be reached
    │   ├── StoreAccessError          4  access denied, unknown access key, bad signature
    │   └── StoreUnreachableError     4  no connection to the store's endpoint (or it timed out)
    ├── StoreConfigError              3  (a ConfigError) the store URL names no bucket there,
    │                                    or the wrong region
    ├── ManifestError                 1  the SQLite ledger is unusable, or cannot be written
    │   ├── SchemaVersionError        1  ledger written by an unknown (newer) version
    │   └── LockedError               1  another cdnlogs run holds the archive lock
    ├── ParseError                    1  a log line or file that cannot be parsed
    └── IncompleteArchiveError        6  `status --check`: missing hours, failed files, stale sync

This module imports nothing from the package, so every other module may import it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit statuses; scripts and cron lines depend on these numbers."""

    OK = 0
    ERROR = 1
    USAGE = 2
    CONFIG = 3
    API = 4
    PARTIAL = 5
    #: ``reconcile``: some settled hour (or day) holds less than the provider counted.
    SHORT = 6
    #: ``status --check``: the same status for "the archive is incomplete or stale".
    INCOMPLETE = 6
    INTERRUPTED = 130
    TERMINATED = 143


class CdnLogsError(Exception):
    """Base of every error cdnlogs raises on purpose.

    :param message: one line that names the cause.
    :param hint: an optional next step for the user.
    """

    exit_code: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(CdnLogsError):
    """An option value that is syntactically fine but cannot be used."""

    exit_code = ExitStatus.USAGE


class ConfigError(CdnLogsError):
    """A configuration file, key or value is wrong."""

    exit_code = ExitStatus.CONFIG


class CredentialsError(CdnLogsError):
    """No credential could be found or loaded."""

    exit_code = ExitStatus.CONFIG


class ApiError(CdnLogsError):
    """The provider's API refused a call.

    :param code: the provider's error ``Code`` (for example ``InvalidDomain.NotFound``).
    :param request_id: the provider's ``RequestId``, which its support asks for.
    :param status: the HTTP status, when there was a response.
    """

    exit_code = ExitStatus.API

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        parts = [message]
        if code:
            parts.insert(0, f"{code}:")
        if request_id:
            parts.append(f"(RequestId {request_id})")
        super().__init__(" ".join(parts), hint=hint)
        self.code = code
        self.provider_message = message
        self.request_id = request_id
        self.status = status


class ApiAuthError(ApiError):
    """Signature, access key, security token or permission problems."""


class ApiNotFoundError(ApiError):
    """The domain (or another named resource) does not exist for this account."""


class ApiThrottledError(ApiError):
    """Still throttled or unavailable after every retry."""


class TransferError(CdnLogsError):
    """One file could not be downloaded and verified."""

    exit_code = ExitStatus.PARTIAL


class IncompleteDownloadError(TransferError):
    """The body was short, long, or not a complete gzip stream."""


class UnsafeNameError(TransferError):
    """A file name from the network that cannot be used as a plain local file name."""


class UrlExpiredError(TransferError):
    """The signed download URL expired (``Expires=`` passed) or the host answered 403."""


class RemoteNotFoundError(TransferError):
    """The log host answered 404 for the file, again after a short retry."""


class RedirectRefusedError(TransferError):
    """The log host redirected a signed URL to another origin; it was not followed."""


class RetriesExceededError(TransferError):
    """Gave up after the retry budget; ``last_exception`` says why."""

    def __init__(self, message: str, *, last_exception: BaseException | None = None) -> None:
        super().__init__(message)
        self.last_exception = last_exception


class PartialSyncError(CdnLogsError):
    """Some files failed after retries; every other file was kept and recorded.

    The base of every "done, except for some files" outcome (exit 5): its subclasses name what
    the command was doing, so ``except PartialSyncError`` still catches them all.
    """

    exit_code = ExitStatus.PARTIAL


class CorruptFilesError(PartialSyncError):
    """``verify`` found files missing or corrupt; they are marked for the next sync to fetch."""


class PruneIncompleteError(PartialSyncError):
    """``prune`` could not remove some files; the others are pruned and recorded."""


class IngestIncompleteError(PartialSyncError):
    """Some files could not be ingested; every other file is in the dataset."""


class ReconcileShortError(CdnLogsError):
    """The archive holds less than the provider counted for some settled hour or day."""

    exit_code = ExitStatus.SHORT


class ArchivePathError(CdnLogsError):
    """A directory the archive needs cannot exist: a regular file is in the way, or no rights."""


class StoreError(CdnLogsError):
    """The object store (S3, OSS) refused a call, or answered badly after every retry.

    Messages name the ``s3://`` URL and the endpoint, never a credential.
    """

    exit_code = ExitStatus.API


class StoreAccessError(StoreError):
    """Access denied, an unknown access key or a bad signature."""


class StoreUnreachableError(StoreError):
    """The store's endpoint cannot be reached (refused, DNS, timeout)."""


class StoreConfigError(ConfigError):
    """The store settings name something that is not there: no such bucket, the wrong region."""


class ManifestError(CdnLogsError):
    """The SQLite ledger cannot be used."""


class SchemaVersionError(ManifestError):
    """The ledger's schema version is not one this version understands."""


class LockedError(ManifestError):
    """Another process holds the archive lock."""


class ParseError(CdnLogsError):
    """A log line or file cannot be parsed."""


class IncompleteArchiveError(CdnLogsError):
    """A check found the archive incomplete or stale (the reasons are in the message)."""

    exit_code = ExitStatus.INCOMPLETE


def is_interrupt(exc: BaseException) -> bool:
    """True for DuckDB's ways of saying a statement was interrupted (Ctrl-C, ``interrupt()``).

    A statement interrupted from another thread raises ``duckdb.InterruptException``; Ctrl-C in
    the thread running it surfaces as ``RuntimeError("Query interrupted")`` (duckdb 2.0.1).
    Checked by name so this leaf module does not import duckdb.
    """
    kind = type(exc)
    if kind.__name__ == "InterruptException" and kind.__module__.lstrip("_").startswith("duckdb"):
        return True
    return isinstance(exc, RuntimeError) and "query interrupted" in str(exc).lower()
