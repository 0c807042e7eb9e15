#!/usr/bin/python3
"""libtorrent 2.0 peer for bench/peers.sh. Run with /usr/bin/python3 (Debian's libtorrent bindings import
only there).

Subcommands:
  seed --listen IP:PORT SAVE_DIR T1.torrent [T2.torrent ...] [--timeout S] [--high-performance]
      Seed every torrent from SAVE_DIR in one session confined to IP (no DHT, LSD, UPnP, NAT-PMP, uTP; many
      connections from one IP allowed; outgoing connections and announces leave from IP). Prints JSON lines
      on stdout, flushed: {"event": "ready", "torrents": N, "seconds": S} once every torrent verified fully
      and had a tracker reply; {"event": "error", ...} and exit 2 if a torrent is incomplete on disk. Then
      serves until SIGTERM or SECONDS (exit 3).
  get --listen IP:PORT TORRENT|MAGNET SAVE_DIR [--timeout S]
      Download a .torrent or a magnet link into SAVE_DIR (peers from its trackers) with libtorrent's default
      settings (plus the same loopback confinement); prints {"event": "metadata", "seconds": S} when a
      magnet's metadata arrived and {"event": "first_piece", "seconds": S} when the first piece passed its
      hash check (seconds since the command started); exits 0 as soon as every piece passed, printing
      {"event": "finished", "seconds": S, "downloaded": BYTES}; exit 3 after SECONDS.

Exit codes: 0 success, 2 usage or libtorrent error, 3 timed out.
"""

import argparse
import json
import os
import signal
import sys
import time

try:
    import libtorrent as lt
except ImportError as e:  # pragma: no cover
    print("lt_bench: cannot import libtorrent (%s); use /usr/bin/python3 (python3-libtorrent)" % e,
          file=sys.stderr)
    sys.exit(2)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def session_for(listen, high_performance):
    ip, _, port = listen.rpartition(":")
    if not ip or not port.isdigit():
        raise SystemExit("lt_bench: --listen wants IP:PORT, got %r" % listen)
    settings = lt.high_performance_seed() if high_performance else lt.default_settings()
    settings.update({
        "listen_interfaces": listen,
        "outgoing_interfaces": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.storage_notification
        | lt.alert.category_t.tracker_notification
        | lt.alert.category_t.piece_progress_notification,
    })
    return lt.session(settings)


def add(ses, torrent, save_dir):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = os.path.abspath(save_dir)
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    return ses.add_torrent(atp)


def cmd_seed(args):
    t0 = time.monotonic()
    ses = session_for(args.listen, args.high_performance)
    handles = {}
    for t in args.torrents:
        h = add(ses, t, args.save_dir)
        handles[str(h.info_hash())] = (h, t)
    checked = set()
    announced = set()
    ready = False
    deadline = t0 + args.timeout
    while time.monotonic() < deadline:
        ses.wait_for_alert(500)
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_checked_alert):
                h = a.handle
                st = h.status()
                if st.num_pieces != h.torrent_file().num_pieces():
                    emit({"event": "error", "message": "%s: only %d of %d pieces verified in %s" % (
                        handles.get(str(h.info_hash()), (None, "?"))[1], st.num_pieces,
                        h.torrent_file().num_pieces(), args.save_dir)})
                    return 2
                checked.add(str(h.info_hash()))
            elif isinstance(a, lt.tracker_reply_alert):
                announced.add(str(a.handle.info_hash()))
            elif isinstance(a, (lt.tracker_error_alert, lt.tracker_warning_alert)):
                emit({"event": "tracker_error", "message": a.message()})
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                emit({"event": "error", "message": a.message()})
                return 2
        if not ready and len(checked) == len(handles) and len(announced) == len(handles):
            ready = True
            emit({"event": "ready", "torrents": len(handles), "port": ses.listen_port(),
                  "seconds": round(time.monotonic() - t0, 3)})
    emit({"event": "timeout", "seconds": args.timeout})
    return 3


def cmd_get(args):
    t0 = time.monotonic()
    ses = session_for(args.listen, False)
    if args.torrent.startswith("magnet:"):
        atp = lt.parse_magnet_uri(args.torrent)
        atp.save_path = os.path.abspath(args.save_dir)
        atp.flags &= ~lt.torrent_flags.auto_managed
        atp.flags &= ~lt.torrent_flags.paused
        h = ses.add_torrent(atp)
    else:
        h = add(ses, args.torrent, args.save_dir)
    deadline = t0 + args.timeout
    first_piece = False
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                emit({"event": "error", "message": a.message()})
                return 2
            if isinstance(a, lt.metadata_received_alert):
                emit({"event": "metadata", "seconds": round(time.monotonic() - t0, 4)})
            if isinstance(a, lt.piece_finished_alert) and not first_piece:
                first_piece = True
                emit({"event": "first_piece", "seconds": round(time.monotonic() - t0, 4)})
        st = h.status()
        if st.is_seeding or st.is_finished:
            emit({"event": "finished", "seconds": round(time.monotonic() - t0, 3),
                  "downloaded": st.total_payload_download})
            # Close the files (libtorrent 2.0 writes through memory maps) before exiting.
            ses.remove_torrent(h)
            return 0
    st = h.status()
    emit({"event": "timeout", "seconds": args.timeout, "progress": st.progress})
    return 3


def main():
    p = argparse.ArgumentParser(prog="lt_bench.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--listen", required=True)
    s.add_argument("--timeout", type=float, default=3600.0)
    s.add_argument("--high-performance", action="store_true",
                   help="start from libtorrent's high_performance_seed() settings")
    s.add_argument("save_dir")
    s.add_argument("torrents", nargs="+")
    g = sub.add_parser("get")
    g.add_argument("--listen", required=True)
    g.add_argument("--timeout", type=float, default=900.0)
    g.add_argument("torrent")
    g.add_argument("save_dir")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        return cmd_seed(args) if args.cmd == "seed" else cmd_get(args)
    except RuntimeError as e:
        print("lt_bench %s: %s" % (args.cmd, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
