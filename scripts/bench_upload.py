"""Upload SIZE_MIB random bytes through the API (presigned PUTs straight to S3), complete, print the upload id.

Usage: bench_upload.py API_BASE_URL SIZE_MIB [CHUNK_MIB]   (standard library only)
"""
import hashlib
import json
import os
import sys
import urllib.request


def call(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if isinstance(body, dict):
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as response:
        return response.headers, response.read()


def main() -> None:
    base, size_mib = sys.argv[1], int(sys.argv[2])
    chunk = (int(sys.argv[3]) if len(sys.argv) > 3 else 64) * 1024 * 1024
    size = size_mib * 1024 * 1024
    _, body = call("POST", f"{base}/v1/uploads", {"filename": "bench.bin", "size": size, "chunkSize": chunk})
    upload_id = json.loads(body)["uploadId"]
    for index, offset in enumerate(range(0, size, chunk)):
        data = os.urandom(min(chunk, size - offset))
        sha256 = hashlib.sha256(data).hexdigest()
        _, body = call("POST", f"{base}/v1/uploads/{upload_id}/chunks/{index}/url", {"sha256": sha256})
        url = json.loads(body)
        headers, _ = call("PUT", url["url"], data, url["headers"])
        call("PUT", f"{base}/v1/uploads/{upload_id}/chunks/{index}", {"etag": headers["ETag"], "sha256": sha256})
    call("POST", f"{base}/v1/uploads/{upload_id}/complete", b"")
    print(upload_id)


if __name__ == "__main__":
    main()
