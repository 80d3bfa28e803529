"""Trace and distribution file readers: one module per format, all raising ``TraceFormatError``.

Token-count policy shared by every reader (see :class:`~lodestar.workload.traces.rows.TokenPolicy`):
a row whose input has 0 tokens is skipped and counted; a row whose output has 0 tokens gets 1
output token and is counted; negative counts are a format error.
"""
