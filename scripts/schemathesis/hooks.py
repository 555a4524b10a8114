"""Schemathesis hooks for what openapi.yaml states in words but a JSON Schema cannot.

Each hook only moves a schema-valid value to another schema-valid value that also keeps the documented rule,
so schemathesis's positive cases are ones the service must accept; invalid values are left alone, so its
negative cases stay negative.
"""
import uuid

import schemathesis

MIB = 1024 * 1024
MIN_CHUNK = 5 * MIB
MAX_CHUNK = 5 * 1024 * MIB
MAX_CHUNKS = 10_000


def _whole(value):
    return type(value) is int or (type(value) is float and value.is_integer())


def _printable_key(value):
    return isinstance(value, str) and 1 <= len(value) <= 255 and all(" " <= c <= "~" for c in value)


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if case.operation.method.upper() != "POST" or case.operation.path != "/v1/uploads":
        return
    # Negative cases are left as drawn: any change makes schemathesis revalidate the case, and one whose
    # Authorization header it dropped would be sent with the header again.
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return
    # "Unique per intended upload": a key sent again with another body is 422 idempotency_key_reused, as the
    # spec says; the fuzzer would reuse its few generated keys for every body. Replays are the e2e suite's.
    headers = case.headers or {}
    if _printable_key(headers.get("Idempotency-Key")):
        headers["Idempotency-Key"] = str(uuid.uuid4())
    # chunkSize against size: at least 5 MiB unless the file is one chunk, and at most 10,000 chunks.
    body = case.body
    if isinstance(body, dict) and _whole(body.get("size")) and _whole(body.get("chunkSize")):
        size, chunk = int(body["size"]), int(body["chunkSize"])
        if 0 <= size and 1 <= chunk <= MAX_CHUNK:
            if size > chunk:
                chunk = max(chunk, MIN_CHUNK)
            body["chunkSize"] = min(max(chunk, -(-size // MAX_CHUNKS)), MAX_CHUNK)
