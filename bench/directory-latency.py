#!/usr/bin/env python3
"""Latency client for bench/directory.sh: sequential GET requests on one keep-alive connection.

    directory-latency.py HOST:PORT PATHS_FILE SAMPLES WARMUP

Requests the paths of PATHS_FILE (one per line) in turn, round robin, WARMUP times unrecorded and then
SAMPLES times, each timed from sending the request to having read the whole body. Every answer must be
200 with a body; anything else is counted as an error (and the connection reopened). Prints one JSON line:
samples, errors, p50/p90/p99/max/mean in milliseconds, mean body bytes.
"""

import http.client
import json
import sys
import time


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    host, port = sys.argv[1].rsplit(":", 1)
    with open(sys.argv[2]) as f:
        paths = [line.strip() for line in f if line.strip()]
    samples, warmup = int(sys.argv[3]), int(sys.argv[4])
    if not paths or samples <= 0:
        sys.exit("no paths or no samples")

    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    times, errors, body_bytes = [], 0, 0
    first_error = None
    for i in range(warmup + samples):
        path = paths[i % len(paths)]
        resp = None
        t0 = time.perf_counter()
        try:
            conn.request("GET", path, headers={"Accept-Encoding": "identity"})
            resp = conn.getresponse()
            body = resp.read()
            ok = resp.status == 200 and len(body) > 0
        except (OSError, http.client.HTTPException) as e:
            ok, body = False, b""
            first_error = first_error or f"{path}: {e}"
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
        dt = time.perf_counter() - t0
        if not ok:
            first_error = first_error or f"{path}: status {getattr(resp, 'status', '?')}"
        if i < warmup:
            continue
        if ok:
            times.append(dt * 1000.0)
            body_bytes += len(body)
        else:
            errors += 1
    conn.close()

    times.sort()

    def pct(p):
        if not times:
            return None
        k = min(len(times) - 1, max(0, int(round(p / 100.0 * len(times) + 0.5)) - 1))
        return round(times[k], 3)

    print(
        json.dumps(
            {
                "samples": len(times),
                "errors": errors,
                "first_error": first_error,
                "p50": pct(50),
                "p90": pct(90),
                "p99": pct(99),
                "max": round(times[-1], 3) if times else None,
                "mean": round(sum(times) / len(times), 3) if times else None,
                "mean_bytes": int(body_bytes / len(times)) if times else 0,
            }
        )
    )


if __name__ == "__main__":
    main()
