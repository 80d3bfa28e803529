"""Replay recorded traffic: rebuild the request stream from logged decisions and outcomes and
re-run it in the simulator under other policies (``resimulate``), or estimate off-policy how a
candidate policy would have done on the logged decisions themselves (``ope``)."""
