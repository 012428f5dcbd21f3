"""Typed calls over Gearman: the envelope (``bridge.rpc.envelope``), clients and workers."""
