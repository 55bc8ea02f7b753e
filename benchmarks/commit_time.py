"""What committing to the Delta tables costs a run: the time spent committing against the run's wall time.

Serves the offline demo's site (crawler/demo.py) on 127.0.0.1 and runs ``scrapy crawl news`` against it into a
fresh folder archive and, with ``--s3``, into a bucket of a moto server started on 127.0.0.1 (the test extra's
moto), once with the default file rolling (one file per dataset: three commits) and once with
``ARCHIVE_MAX_FILE_ROWS=1`` (a commit per row), and prints each run's manifest ``timing``: wall seconds, the
seconds spent in commits (summed over the upload threads, which commit while the crawl goes on) and their share.

Run: python benchmarks/commit_time.py [--s3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crawler.demo import build_site  # noqa: E402
from crawler.localsite import LocalSite  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}


def crawl(base: str, uri: str, rows: str, env: dict) -> None:
    command = [sys.executable, "-m", "scrapy", "crawl", "news", "-a", f"start_urls={base}/",
               "-s", f"ARCHIVE_URI={uri}", "-s", f"ARCHIVE_MAX_FILE_ROWS={rows}", "-s", "DOWNLOAD_DELAY=0",
               "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "CRAWL_ALLOWED_NETWORKS=127.0.0.0/8,::1",
               "-s", "ALLOW_PRIVATE_NETWORKS=127.0.0.0/8,::1", "-s", "CRAWL_CONTACT=bench@example.invalid",
               "-s", "LOG_LEVEL=WARNING"]
    subprocess.run(command, cwd=REPO, env={**os.environ, **env}, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--s3", action="store_true", help="also into a moto S3 server on 127.0.0.1")
    args = parser.parse_args()
    site = LocalSite()
    base = site.start().rstrip("/")
    site.pages.update(build_site(base).pages)
    targets = []
    with tempfile.TemporaryDirectory() as folder:
        targets.append(("folder", lambda rows: str(Path(folder) / f"archive-{rows}"), {}, None))
        moto = None
        if args.s3:
            sys.path.insert(0, str(REPO / "tests"))
            import boto3
            from s3fakes import MotoServer

            moto = MotoServer()
            moto.start()
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            client = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                                  aws_access_key_id="bench", aws_secret_access_key="bench")
            client.create_bucket(Bucket=bucket)
            targets.append(("s3", lambda rows: f"s3://{bucket}/archive-{rows}",
                            {**S3_ENV, "AWS_ENDPOINT_URL": moto.url}, client))
        try:
            for name, uri_of, env, client in targets:
                for rows in ("100000", "1"):
                    uri = uri_of(rows)
                    crawl(base, uri, rows, {**env, "XDG_CACHE_HOME": str(Path(folder) / f"cache-{name}-{rows}")})
                    if client is None:
                        manifest = json.loads(next((Path(uri) / "runs").glob("*.json")).read_text())
                    else:
                        prefix = uri.split("/", 3)[3]
                        [key] = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/runs/")["Contents"]]
                        manifest = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
                    timing = manifest["timing"]
                    print(f"{name:6s} ARCHIVE_MAX_FILE_ROWS={rows:>6s}: {len(manifest['commits']):3d} commits, "
                          f"{timing['commit_seconds']:.3f} s committing of {timing['wall_seconds']:.3f} s wall "
                          f"({100 * timing['commit_share']:.1f} %)")
        finally:
            if moto is not None:
                moto.stop()
            site.stop()


if __name__ == "__main__":
    main()
