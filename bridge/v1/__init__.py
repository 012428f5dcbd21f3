"""Generated protobuf modules of the wire contract (schemas/bridge/v1/*.proto).

``envelope_pb2`` holds ``Request``, ``Error``, ``Code`` and ``Encoding``; ``options_pb2`` the schema
options. Regenerate with ``scripts/regen_protos.sh``; never edit the ``*_pb2`` files by hand.
"""
