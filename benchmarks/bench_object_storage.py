"""Object-storage benchmark: the same 2.6 M-row feed (CSV and Parquet) from a local file and from S3.

Not a test: it prints figures. The store is moto's S3 server on loopback, in this process (its
threads share the machine's two cores with plancheck, which a real store would not; the figures
are an upper bound of the cost). Each run is a fresh `plancheck batch --workers 2` process
(benchmarks/bench_scale.py's runner), reading the feed through s3fs with the AWS environment
variables pointing at the server; the feeds are bench_scale's (built once into benchmarks/data).

    python benchmarks/bench_object_storage.py [--repeat 2] [--rows 2.6]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_scale  # noqa: E402 - the feeds and the runner are bench_scale's

BUCKET = "bench-feeds"


def start_store() -> object:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=float, default=2.6, help="millions of rows: 2.6 x a whole number")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    blocks = max(1, round(args.rows / 2.6))
    bench_scale.build_feeds([blocks])
    feeds = [bench_scale.feed_path(blocks), bench_scale.build_parquet(blocks)]
    server = start_store()
    try:
        import fsspec

        fs = fsspec.filesystem("s3")
        fs.mkdir(BUCKET)
        urls = {}
        for feed in feeds:
            urls[feed] = f"s3://{BUCKET}/{feed.name}"
            fs.put_file(str(feed), urls[feed])
        print(f"{'feed':<8} {'from':<6} {'seconds':>8} {'process s':>9} {'rows/s':>9} {'CPU s':>6} "
              f"{'read_and_spill':>14} {'check':>6} {'MB':>6}  load avg")
        with tempfile.TemporaryDirectory() as tmp:
            for feed in feeds:
                for where, name in ((str(feed), "file"), (urls[feed], "s3")):
                    for _ in range(args.repeat):
                        before = bench_scale.load()
                        result = bench_scale.run_batch(where, ["--workers", "2"], Path(tmp))
                        s = result["summary"]
                        wall = s["phases"]["wall"]
                        print(f"{feed.suffix[1:]:<8} {name:<6} {s['seconds']:>8.2f} {result['wall']:>9.2f} "
                              f"{s['rows_per_second']:>9,} {result['cpu']:>6.1f} {wall['read_and_spill']:>14.2f} "
                              f"{wall['check']:>6.2f} {feed.stat().st_size / 1e6:>6.0f}  {before} -> "
                              f"{bench_scale.load()}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
