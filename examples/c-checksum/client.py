"""Checksums a file-sized blob in C from Python through the generated stubs.

    bridge generate --lang python -o GEN -I examples/c-checksum examples/c-checksum/checksum.proto
    python3 examples/c-checksum/client.py --servers 127.0.0.1:4730 --gen GEN
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib

from bridge.rpc.client import Encoding


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="127.0.0.1:4730")
    parser.add_argument("--gen", required=True, help="where `bridge generate --lang python` wrote")
    args = parser.parse_args()
    sys.path.insert(0, args.gen)
    import checksum_pb2  # type: ignore[import-not-found]  # generated
    from checksum_bridge import ChecksumClient  # type: ignore[import-not-found]  # generated

    data = bytes(range(256)) * 16384  # 4 MiB
    with ChecksumClient(args.servers) as checksum:
        started = time.perf_counter()
        digest = checksum.digest(data=data, timeout=30)
        elapsed_ms = (time.perf_counter() - started) * 1000
        agrees = digest.crc32 == zlib.crc32(data) and digest.adler32 == zlib.adler32(data)
        print(f"digest of {digest.size} bytes in {elapsed_ms:.1f} ms (round trip)")
        print(f"  crc32    : {digest.crc32:08x}  adler32: {digest.adler32:08x}"
              f"  (zlib agrees: {agrees})")
        print(f"  fnv1a-64 : {digest.fnv1a_64:016x}")

        # Change one byte in the third 1 MiB block: only that chunk's checksum moves.
        edited = bytearray(data)
        edited[2 * 1024 * 1024 + 7] ^= 0xFF
        progress: list[tuple[int, int]] = []
        before = list(checksum.digest_chunks(data=data, chunk_size=1 << 20, timeout=30,
                                             encoding=Encoding.MSGPACK))
        after = list(checksum.digest_chunks(
            data=bytes(edited), chunk_size=1 << 20, algorithm=checksum_pb2.ADLER32, timeout=30,
            on_progress=lambda done, total: progress.append((done, total)),
        ))
        before_adler = [zlib.adler32(data[c.offset:c.offset + c.length]) for c in before]
        changed = [c.offset for c, old in zip(after, before_adler, strict=True)
                   if c.checksum != old]
        last = progress[-1] if progress else None
        print(f"chunks     : {len(before)} x 1 MiB streamed; last progress: {last}")
        print(f"changed at : offsets {changed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
