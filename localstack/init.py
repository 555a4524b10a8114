"""Create the bucket and the CORS rule browsers need to PUT to presigned URLs and read the ETag header.

Usage: init.py ENDPOINT BUCKET   (runs with the LocalStack venv's python, which ships boto3)
Idempotent: an existing bucket is kept and its CORS rule rewritten.
"""
import sys

import boto3
from botocore.config import Config

CORS_RULES = {
    "CORSRules": [
        {
            "AllowedOrigins": ["*"],
            "AllowedMethods": ["PUT", "POST", "GET", "HEAD"],
            "AllowedHeaders": ["*"],
            # POST: browser form uploads with a presigned POST policy (Uppy's small-file path).
            # Without ETag here a browser cannot read the part's ETag it must report back.
            "ExposeHeaders": ["ETag", "Content-Range", "Content-Length", "Accept-Ranges"],
            "MaxAgeSeconds": 3600,
        }
    ]
}


def main() -> None:
    endpoint, bucket = sys.argv[1], sys.argv[2]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}),
    )
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=CORS_RULES)
    print(f"bucket {bucket} ready at {endpoint}")


if __name__ == "__main__":
    main()
