"""An unchanged Python program submitting jobs with ``gear`` (PyPI, thread based) to functions that
bridge workers serve bare (the Bare service of schemas/interop/v1/interop.proto): JSON with the
standard ``json`` module, as such programs do. Prints one JSON line per call for the test.

Usage: python client.py HOST:PORT
"""

import json
import sys
import time

import gear


def run(client, name, arguments, timeout=10.0):
    job = gear.Job(name, arguments)
    client.submitJob(job)
    deadline = time.monotonic() + timeout
    while not job.complete:
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: no answer in {timeout} s")
        time.sleep(0.005)
    return job


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    client = gear.Client("legacy-gear-client")
    client.addServer(host, int(port))
    client.waitForServer(timeout=10)
    client.setOption("exceptions")

    sent = {
        "text": "héllo from gear",
        "numbers": [1, -2, 300],
        "inner": {"name": "gear", "value": 2**63 - 1},
        "labels": {"-5": "minus five"},
        "scalars": {"f_uint64": 2**64 - 1, "f_bool": True, "f_bytes": "AP+A", "f_enum": 2},
        "items": [{"name": "a"}, {"value": 3}],
    }
    job = run(client, "interop_bare_echo_json", json.dumps(sent).encode())
    reply = json.loads(b"".join(job.data)) if not job.failure else None
    print(json.dumps({"call": "echo_json", "sent": sent, "reply": reply}), flush=True)

    job = run(client, "interop_bare_raise_json",
              json.dumps({"code": 7, "message": "not yours"}).encode())
    exception = json.loads(job.exception) if job.exception else None
    print(json.dumps({"call": "raise_json", "failure": job.failure, "exception": exception}),
          flush=True)
    client.shutdown()


if __name__ == "__main__":
    main()
