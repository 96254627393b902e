"""The bare-HTTP peer of the load benchmark: an ASGI app that reads the request and answers a fixed
KMS-shaped JSON body, served by uvicorn with the options ``openkms serve`` uses (uvloop, httptools,
no access log, no Server or Date header). What openkms does per request on top of this is its own
work: SigV4, validation, authorization, cryptography and the audit record.

    .venv/bin/python benchmarks/bare_asgi.py --port 8099
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

BODY = (
    b'{"CiphertextBlob":"AQICAHh0ZXN0dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdA==",'
    b'"KeyId":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",'
    b'"EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}'
)
HEADERS = [
    (b"content-type", b"application/x-amz-json-1.1"),
    (b"content-length", str(len(BODY)).encode()),
    (b"x-amzn-requestid", b"00000000-0000-0000-0000-000000000000"),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # read the whole request body, as a real service must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
