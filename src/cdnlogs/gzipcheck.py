"""The one gzip verifier: every ``.gz`` that enters the archive is checked by these rules.

``sync`` feeds it each download as the bytes arrive (``cdnlogs.transfer``); ``adopt`` feeds it
the files it takes in (``cdnlogs.housekeeping``). The rules, the same for both:

* one or more gzip members back to back, each with a valid header, CRC-32 and length;
* zero bytes after the last member are padding (gzip(1) accepts them; some tools pad to a
  block size), anything else after the padding is an error;
* the stream must end at the end of a member (a truncated file is an error), and hold one;
* the inflate cap: plain text comes out in pieces of at most ``INFLATE_PIECE_BYTES`` per call,
  so a highly compressible file (or a gzip bomb) never sits in memory whole, and a file that
  inflates to more than ``MAX_INFLATED_BYTES`` is refused (it would fill the disk).

A file breaking a rule raises ``IncompleteDownloadError`` with a message starting with
``corrupt gzip:`` (sync retries it; adopt skips the file with that message).
"""

from __future__ import annotations

import types
import zlib
from collections.abc import Iterator
from typing import Any

from cdnlogs.errors import IncompleteDownloadError

_inflate_module: types.ModuleType
try:  # isal inflates about 3x faster than zlib; both have the same decompressobj API.
    from isal import isal_zlib

    _inflate_module = isal_zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    _inflate_module = zlib
_INFLATE_ERRORS: tuple[type[BaseException], ...] = (
    getattr(_inflate_module, "error", zlib.error),
    zlib.error,
)

#: Largest piece of plain text inflated per call: caps memory for highly compressible logs.
INFLATE_PIECE_BYTES = 2 << 20
#: Largest plain text one file may inflate to. An hour of one domain's log is far below it
#: (a busy domain: ~3 GB for 10 M requests); a gzip bomb is not.
MAX_INFLATED_BYTES = 256 << 30

_GZIP_WBITS = 31  # zlib: expect a gzip header and trailer
_GZIP_MAGIC = b"\x1f\x8b"


class GzipStreamVerifier:
    """Inflate a (multi-member) gzip stream piece by piece, checking it by the rules above.

    ``feed`` yields plain-text pieces of at most ``max_output`` bytes; ``finish`` raises
    IncompleteDownloadError unless the stream ended exactly at the end of a member (or in the
    zero padding after the last one).
    """

    def __init__(
        self, max_output: int = INFLATE_PIECE_BYTES, max_inflated: int = MAX_INFLATED_BYTES
    ) -> None:
        self._max_output = max_output
        self._max_inflated = max_inflated
        self._inflater: Any = _inflate_module.decompressobj(wbits=_GZIP_WBITS)
        self._started = False  # bytes of the current member seen
        self._members = 0
        self._padding = False
        #: Plain bytes inflated so far.
        self.inflated = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Inflate ``data``; yield the plain text it completes."""
        while data:
            if self._padding:
                if data.strip(b"\x00"):
                    raise IncompleteDownloadError("corrupt gzip: data after the zero padding")
                return
            if self._inflater.eof:
                # The previous member ended cleanly: what follows is a new member or padding.
                if data[:1] == b"\x00":
                    self._padding = True
                    continue
                self._inflater = _inflate_module.decompressobj(wbits=_GZIP_WBITS)
                self._started = False
            if not self._started and len(data) >= 2 and data[:2] != _GZIP_MAGIC:
                raise IncompleteDownloadError("corrupt gzip: not a gzip member header")
            self._started = True
            try:
                out = self._inflater.decompress(data, self._max_output)
            except _INFLATE_ERRORS as exc:
                raise IncompleteDownloadError(f"corrupt gzip: {exc}") from None
            if out:
                self.inflated += len(out)
                if self.inflated > self._max_inflated:
                    raise IncompleteDownloadError(
                        f"corrupt gzip: it inflates to more than {self._max_inflated:,} bytes "
                        "(the inflate cap)"
                    )
                yield out
            if self._inflater.eof:
                self._members += 1
                data = self._inflater.unused_data
            else:
                data = self._inflater.unconsumed_tail

    def finish(self) -> None:
        """Raise unless the stream ended at the end of a member."""
        if self._members == 0 or (self._started and not self._inflater.eof):
            raise IncompleteDownloadError("corrupt gzip: the stream ends inside a member")
