#!/usr/bin/python3
"""A libtorrent 2.0 session with only its DHT node running, on loopback, for bench/dht.sh.

    lt_dht.py PORT [MAX_PEERS_PER_HASH] [MAX_INFO_HASHES]

Listens on 127.0.0.1:PORT (UDP for the DHT; libtorrent also opens TCP there), with no bootstrap node, no
torrents, and no local discovery, UPnP or NAT-PMP. Settings raised so libtorrent's own limits do not throttle
the benchmark (its defaults in brackets):

- dht_upload_rate_limit 200,000,000 bytes/s [8,000]: the DHT's send quota; past it libtorrent drops
  incoming queries. 3x the limit must fit a 32-bit int, hence not higher.
- dht_block_ratelimit 1,000,000 queries/s per IP [5]: above it an IP is blocked for dht_block_timeout.
- dht_restrict_routing_ips, dht_restrict_search_ips off [on]: on loopback every node shares a /24.

and its store sized like bitswarm's defaults, so both hold the same swarms and answer with as many peers:
dht_max_peers MAX_PEERS_PER_HASH (100) [500], dht_max_torrents MAX_INFO_HASHES (1000) [2000]. Everything
else is left at its default (dht_max_peers_reply 100, dht_ignore_dark_internet on: it does not cover
127.0.0.0/8). Prints "ready" once the DHT is running, then runs until SIGTERM or SIGINT.
"""
import signal
import sys
import time

import libtorrent as lt


def main():
    port = int(sys.argv[1])
    max_peers = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    max_torrents = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_dht": True,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_upload_rate_limit": 200_000_000,
        "dht_block_ratelimit": 1_000_000,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_max_peers": max_peers,
        "dht_max_torrents": max_torrents,
        "alert_mask": 0,
    }
    ses = lt.session(settings)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    deadline = time.time() + 30
    while not ses.is_dht_running():
        if time.time() > deadline:
            print("the DHT did not start", flush=True)
            return 1
        time.sleep(0.05)
    applied = ses.get_settings()
    print("ready dht_upload_rate_limit=%d dht_block_ratelimit=%d dht_max_peers=%d dht_max_torrents=%d"
          % (applied["dht_upload_rate_limit"], applied["dht_block_ratelimit"], applied["dht_max_peers"],
             applied["dht_max_torrents"]), flush=True)
    while not stop:
        time.sleep(0.2)
    del ses
    return 0


if __name__ == "__main__":
    sys.exit(main())
