#!/usr/bin/python3
"""One HTTP request, for bitswarm's interop tests that must reach a server inside a private network namespace
(`ip netns exec NS /usr/bin/python3 http_get.py URL`). Standard library only.

Usage: http_get.py URL [--bearer TOKEN] [--timeout SECONDS] [--header NAME:VALUE]... [--data-file PATH]

A GET, or with --data-file a POST whose body is that file's bytes (give its Content-Type with --header).

Writes the response body to stdout, unchanged, whatever the status. Exit codes: 0 when the status is 200,
1 for any other status (the status line goes to stderr), 2 when no response came (error on stderr).
"""

import argparse
import sys
import urllib.error
import urllib.request


def main():
    p = argparse.ArgumentParser(prog="http_get.py")
    p.add_argument("url")
    p.add_argument("--bearer")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--data-file")
    args = p.parse_args()
    data = None
    if args.data_file is not None:
        with open(args.data_file, "rb") as f:
            data = f.read()
    req = urllib.request.Request(args.url, data=data, method="POST" if data is not None else "GET")
    for header in args.header:
        name, _, value = header.partition(":")
        req.add_header(name.strip(), value.strip())
    if args.bearer:
        req.add_header("Authorization", "Bearer " + args.bearer)
    # Never go through a proxy: the server is local.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=args.timeout) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        print("http_get: %s: %s" % (args.url, e), file=sys.stderr)
        return 2
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()
    if status != 200:
        print("http_get: %s: status %d" % (args.url, status), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
