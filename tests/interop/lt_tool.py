#!/usr/bin/python3
"""libtorrent helper for bitswarm's interop tests. Run with /usr/bin/python3 (Debian's libtorrent bindings
import only there).

Subcommands:
  create --version v1|hybrid|v2 --piece-length N [--tracker URL]... PATH OUT
      Make a .torrent of PATH with libtorrent's create_torrent and write it to OUT.
  info FILE.torrent
      Print JSON: info_hash_v1, info_hash_v2 (hex or null), name, num_files, total_size, num_pieces,
      piece_length, and files (path, length, pad) as libtorrent parsed them.
  check FILE.torrent SAVE_DIR [--timeout SECONDS]
      Add the torrent to a loopback-only session with save_path=SAVE_DIR, wait for the full hash check and
      print JSON {ok, pieces_have, num_pieces, state, error}. Exit 0 only if every piece verified.
  seed FILE.torrent SAVE_DIR --listen IP:PORT [--timeout SECONDS]
      Seed the torrent from SAVE_DIR (after a full hash check) through its trackers, in a session confined to
      IP (no LSD, UPnP, NAT-PMP, uTP, and no DHT unless asked: see DHT below; every connection from the same
      IP allowed). Prints one JSON object a line on stdout, flushed: {"event": "seeding", "port", "info_hash"} once every piece verified,
      {"event": "announced", "url", "num_peers"} after each tracker reply, {"event": "tracker_error", ...},
      {"event": "peer", "ip", "port", "incoming"} on each connection and {"event": "uploaded",
      "bytes"} every second while bytes go out. Runs until killed or, after SECONDS, exits 3.
  download FILE.torrent|MAGNET SAVE_DIR --listen IP:PORT [--timeout SECONDS]
      Download the torrent into SAVE_DIR through its trackers (and --peer addresses), in a session confined
      as for seed, then go on seeding. Given a magnet link, the metadata comes from the peers first (BEP 9;
      {"event": "metadata", "info_hash"} once it is here). Events as for seed, except {"event": "ready", "port", "info_hash",
      "pieces", "num_pieces"} once the torrent is added and what is on disk checked; then {"event":
      "progress", "pieces", "num_pieces", "downloaded", "num_peers", "state"} every second while it changes,
      and {"event": "complete", "bytes"} once every piece is verified and flushed to disk.

  dht-node --listen IP:PORT [--dht-bootstrap IP:PORT]... [--timeout SECONDS]
      A libtorrent DHT node with no torrent (on loopback: see DHT below). Prints {"event": "dht_ready",
      "port", "node_id"} once its DHT runs, then the DHT events below. Runs until killed or, after SECONDS,
      exits 3.

  seed and download also take --peer IP:PORT (repeatable: connect to it once the torrent is checked),
  --upload-limit and --download-limit (bytes per second, 0 for none; they apply to local peers too), and
  read commands from stdin, one a line: `connect IP:PORT` (emits {"event": "connect", "ip", "port"}),
  `pause` (graceful, trackers told `stopped`; emits {"event": "paused"} once done), `resume` (emits
  {"event": "resumed"}).

DHT (seed, download, dht-node): --dht turns libtorrent's DHT on (off by default), on the --listen
  address (its UDP port is the TCP one), with no default bootstrap routers and with the loopback settings
  (dht_restrict_routing_ips and dht_restrict_search_ips off: every node here shares 127.0.0.1).
  --dht-bootstrap IP:PORT (repeatable; implies --dht) hands it a node with `add_dht_node`: pinged, and kept
  in the routing table once it answers. --dht-router IP:PORT (repeatable; implies --dht) makes it a
  bootstrap router instead (`dht_bootstrap_nodes`): libtorrent queries routers but never puts them in its
  routing table. --dht-announce-interval SECONDS (libtorrent's dht_announce_interval: how often a torrent
  is announced, and looked up, in the DHT). --no-trackers drops the torrent's (or magnet's) trackers, so
  that peers come from the DHT only. With the DHT on they print:
    {"event": "dht_port", "port"} once libtorrent listens on UDP (seed and download);
    {"event": "dht_table", "node_id", "nodes": [{"id", "addr"}], "buckets": [{"num_nodes",
      "num_replacements"}]} every second while the routing table changes (dht_live_nodes, dht_stats);
    {"event": "dht_announce_in", "ip", "port", "info_hash"} when a node announces a peer to libtorrent's;
    {"event": "dht_peers", "num_peers"} when the torrent's own DHT lookup returns peers (dht_reply_alert);
    {"event": "dht_get_peers_reply", "info_hash", "peers": ["IP:PORT"]} after a `dht_get_peers` command.
  and take more commands on stdin: `dht_get_peers HEX` (session.dht_get_peers), `dht_add_node IP:PORT`
  and, for seed and download, `dht_reannounce` (torrent_handle.force_dht_announce). (session.dht_announce
  cannot be called from Python in 2.0.8: its flags type is not exposed; a torrent announces itself.)

Exit codes: 0 success, 1 check failed (not every piece verified), 2 usage or other error, 3 seed timed out.
"""

import argparse
import json
import os
import queue
import sys
import threading
import time
import warnings

try:
    import libtorrent as lt
except ImportError as e:  # pragma: no cover
    print(
        "lt_tool: cannot import libtorrent (%s); run `bash scripts/install-deps.sh` and use /usr/bin/python3" % e,
        file=sys.stderr,
    )
    sys.exit(2)


def cmd_create(args):
    path = os.path.abspath(args.path)
    if not os.path.exists(path):
        raise SystemExit("lt_tool create: %s does not exist" % path)
    fs = lt.file_storage()
    lt.add_files(fs, path)
    if fs.num_files() == 0:
        raise SystemExit("lt_tool create: no files under %s" % path)
    flags = 0
    if args.version == "v1":
        flags = lt.create_torrent.v1_only
    elif args.version == "v2":
        flags = lt.create_torrent.v2_only
    ct = lt.create_torrent(fs, args.piece_length, flags)
    for i, url in enumerate(args.tracker or []):
        ct.add_tracker(url, i)
    ct.set_creator("lt_tool.py (libtorrent %s)" % lt.__version__)
    lt.set_piece_hashes(ct, os.path.dirname(path))
    data = lt.bencode(ct.generate())
    with open(args.out, "wb") as f:
        f.write(data)
    return 0


def hashes_of(ti):
    ih = ti.info_hashes()
    v1 = str(ih.v1) if ih.has_v1() else None
    v2 = str(ih.v2) if ih.has_v2() else None
    return v1, v2


def cmd_info(args):
    ti = lt.torrent_info(args.torrent)
    v1, v2 = hashes_of(ti)
    fs = ti.files()
    files = []
    for i in range(fs.num_files()):
        pad = bool(fs.file_flags(i) & lt.file_storage.flag_pad_file)
        files.append({"path": fs.file_path(i).replace(os.sep, "/"), "length": fs.file_size(i), "pad": pad})
    out = {
        "info_hash_v1": v1,
        "info_hash_v2": v2,
        "name": ti.name(),
        "num_files": ti.num_files(),
        "total_size": ti.total_size(),
        "num_pieces": ti.num_pieces(),
        "piece_length": ti.piece_length(),
        "files": files,
    }
    print(json.dumps(out))
    return 0


def loopback_session():
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.storage_notification,
    }
    return lt.session(settings)


def cmd_check(args):
    ti = lt.torrent_info(args.torrent)
    ses = loopback_session()
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = os.path.abspath(args.save_dir)
    # Never start downloading or announcing: no tracker contact, just the hash check of what is on disk.
    atp.trackers = []
    atp.url_seeds = []
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    atp.flags |= lt.torrent_flags.upload_mode
    h = ses.add_torrent(atp)
    h.replace_trackers([])

    checked = False
    error = None
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and not checked and error is None:
        ses.wait_for_alert(500)
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_checked_alert):
                checked = True
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                # A missing file is not an error for our purpose (its pieces simply do not verify).
                msg = a.message()
                if isinstance(a, lt.file_error_alert) and "No such file" in msg:
                    continue
                error = msg
    st = h.status()
    if st.errc.value() != 0 and error is None:
        error = st.errc.message()
    if not checked and error is None:
        error = "timed out after %ss (state %s, progress %.3f)" % (args.timeout, st.state, st.progress)
    num_pieces = ti.num_pieces()
    pieces_have = st.num_pieces
    ok = checked and error is None and pieces_have == num_pieces
    out = {
        "ok": ok,
        "pieces_have": pieces_have,
        "num_pieces": num_pieces,
        "state": str(st.state),
        "error": error,
    }
    print(json.dumps(out))
    ses.remove_torrent(h)
    return 0 if ok else 1


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def parse_endpoint(text, what):
    ip, _, port = text.rpartition(":")
    ip = ip.strip("[]")
    if not ip or not port.isdigit():
        raise SystemExit("lt_tool: %s wants IP:PORT, got %r" % (what, text))
    return ip, int(port)


def stdin_commands():
    """Lines from stdin, read by a background thread (stdin may be /dev/null: then none ever come)."""
    q = queue.Queue()

    def reader():
        for line in sys.stdin:
            q.put(line.strip())

    threading.Thread(target=reader, daemon=True).start()
    return q


def dht_wanted(args):
    return bool(getattr(args, "dht", False) or getattr(args, "dht_bootstrap", None)
                or getattr(args, "dht_router", None))


def dht_settings(args):
    """Session settings for the DHT: off, or on for loopback with only the routers given (none by default:
    libtorrent's own default routers are on the internet)."""
    if not dht_wanted(args):
        return {"enable_dht": False}
    routers = [parse_endpoint(r, "--dht-router") for r in (args.dht_router or [])]
    settings = {
        "enable_dht": True,
        "dht_bootstrap_nodes": ",".join("%s:%d" % r for r in routers),
        # Every node here has the address 127.0.0.1: without these, a routing table keeps one node per IP
        # (and a lookup one result per IP).
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
    }
    if args.dht_announce_interval:
        settings["dht_announce_interval"] = int(args.dht_announce_interval)
    return settings


DHT_ALERTS = lt.alert.category_t.dht_notification | lt.alert.category_t.stats_notification


class Dht:
    """libtorrent's DHT in one session: bootstrap nodes, routing table reports, DHT events and commands."""

    def __init__(self, ses, args):
        self.ses = ses
        self.on = dht_wanted(args)
        self.nodes = [parse_endpoint(b, "--dht-bootstrap") for b in (args.dht_bootstrap or [])]
        self.port = None
        self.next_poll = 0.0
        self.buckets = []
        self.last_table = None
        if self.on:
            for n in self.nodes:
                # A plain node (pinged, then kept in the table once it answers), not a router.
                self.ses.add_dht_node(n)

    def own_id(self):
        """The DHT node's id (20 bytes), or None before the DHT runs."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = self.ses.dht_state()
        ids = state.get(b"node-id") if isinstance(state, dict) else None
        if not ids:
            return None
        return ids[0][:20]

    def poll(self, now):
        """Once a second: ask for the routing table (answered by alerts)."""
        if not self.on or now < self.next_poll:
            return
        self.next_poll = now + 1.0
        nid = self.own_id()
        if nid is None:
            return
        self.ses.post_dht_stats()
        self.ses.dht_live_nodes(lt.sha1_hash(nid))

    def handle(self, a):
        """Reports a DHT alert; False for any other alert."""
        if isinstance(a, lt.listen_succeeded_alert):
            if a.socket_type == lt.socket_type_t.udp and self.on and self.port is None:
                self.port = a.port
                emit({"event": "dht_port", "port": a.port})
            return False
        if isinstance(a, lt.dht_stats_alert):
            self.buckets = [{"num_nodes": b["num_nodes"], "num_replacements": b["num_replacements"]}
                            for b in a.routing_table]
        elif isinstance(a, lt.dht_live_nodes_alert):
            nodes = sorted(({"id": str(n["nid"]), "addr": "%s:%d" % (n["endpoint"][0], n["endpoint"][1])}
                            for n in a.nodes), key=lambda n: n["addr"])
            table = {"event": "dht_table", "node_id": str(a.node_id), "nodes": nodes, "buckets": self.buckets}
            if table != self.last_table:
                self.last_table = table
                emit(table)
        elif isinstance(a, lt.dht_announce_alert):
            emit({"event": "dht_announce_in", "ip": str(a.ip), "port": a.port, "info_hash": str(a.info_hash)})
        elif isinstance(a, lt.dht_get_peers_reply_alert):
            peers = ["%s:%d" % (p[0], p[1]) for p in a.peers()]
            emit({"event": "dht_get_peers_reply", "info_hash": str(a.info_hash), "peers": sorted(peers)})
        elif isinstance(a, lt.dht_reply_alert):
            emit({"event": "dht_peers", "num_peers": a.num_peers})
        else:
            return False
        return True

    def command(self, verb, rest, handle=None):
        """Runs a DHT command from stdin; False when `verb` is not one."""
        words = rest.split()
        if verb == "dht_get_peers" and len(words) == 1:
            self.ses.dht_get_peers(lt.sha1_hash(bytes.fromhex(words[0])))
        elif verb == "dht_add_node" and len(words) == 1:
            self.ses.add_dht_node(parse_endpoint(words[0], "dht_add_node"))
        elif verb == "dht_reannounce" and handle is not None:
            handle.force_dht_announce()
        else:
            return False
        return True


def cmd_dht_node(args):
    """`dht-node`: a DHT node with no torrent, reporting its routing table, until killed or --timeout."""
    ip, _ = parse_endpoint(args.listen, "--listen")
    args.dht = True
    settings = {
        "listen_interfaces": args.listen,
        "outgoing_interfaces": ip,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | DHT_ALERTS,
    }
    settings.update(dht_settings(args))
    ses = lt.session(settings)
    dht = Dht(ses, args)
    commands = stdin_commands()
    ready = False
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            dht.handle(a)
        nid = dht.own_id()
        if not ready and dht.port is not None and nid is not None:
            ready = True
            emit({"event": "dht_ready", "port": dht.port, "node_id": nid.hex()})
        while not commands.empty():
            line = commands.get()
            verb, _, rest = line.partition(" ")
            if line and not dht.command(verb, rest.strip()):
                emit({"event": "error", "message": "unknown command %r" % line})
        dht.poll(time.monotonic())
    emit({"event": "timeout", "seconds": args.timeout})
    return 3


def cmd_session(args, seed):
    """`seed` and `download`: one torrent in a session confined to the --listen address, run until killed
    or --timeout."""
    name = "seed" if seed else "download"
    ip, _ = parse_endpoint(args.listen, "--listen")
    peers = [parse_endpoint(p, "--peer") for p in (args.peer or [])]
    magnet = args.torrent.startswith("magnet:")
    if magnet and seed:
        raise SystemExit("lt_tool seed: a magnet link has no data to seed")
    ti = None if magnet else lt.torrent_info(args.torrent)
    settings = {
        "listen_interfaces": args.listen,
        # Outgoing connections and tracker requests leave from the listen address, so a tracker sees this
        # session at IP (it matters when several addresses share one host, as in a network namespace).
        "outgoing_interfaces": ip,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "upload_rate_limit": args.upload_limit,
        "download_rate_limit": args.download_limit,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.storage_notification
        | lt.alert.category_t.tracker_notification
        | lt.alert.category_t.connect_notification
        | lt.alert.category_t.peer_notification
        | DHT_ALERTS,
    }
    settings.update(dht_settings(args))
    ses = lt.session(settings)
    dht = Dht(ses, args)
    # Rate limits apply to the global peer class, which by default leaves out local peers (loopback and
    # private ranges): put every address in it, so that --upload-limit and --download-limit hold here too.
    classes = lt.ip_filter()
    classes.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    classes.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1 << lt.session.global_peer_class_id)
    ses.set_peer_class_filter(classes)
    if magnet:
        atp = lt.parse_magnet_uri(args.torrent)
    else:
        atp = lt.add_torrent_params()
        atp.ti = ti
    atp.save_path = os.path.abspath(args.save_dir)
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    if args.no_trackers:
        # A .torrent's own trackers come back from atp.ti: add the torrent paused, drop them, then start.
        atp.trackers = []
        atp.flags |= lt.torrent_flags.paused
    h = ses.add_torrent(atp)
    if args.no_trackers:
        h.replace_trackers([])
        h.resume()
    commands = stdin_commands()

    if magnet:
        ih = h.info_hashes()
        v1 = str(ih.v1) if ih.has_v1() else None
        v2 = str(ih.v2) if ih.has_v2() else None
        # The peers are dialled at once: they are where the metadata comes from.
        for p in peers:
            h.connect_peer(p)
            emit({"event": "connect", "ip": p[0], "port": p[1]})
        peers = []
    else:
        v1, v2 = hashes_of(ti)
    deadline = time.monotonic() + args.timeout
    checked = False
    complete = False
    flushing = None
    last_uploaded = -1
    last_progress = None
    next_report = 0.0

    def connect(endpoint):
        h.connect_peer(endpoint)
        emit({"event": "connect", "ip": endpoint[0], "port": endpoint[1]})

    def finish():
        emit({"event": "complete", "bytes": h.status().total_done})

    while time.monotonic() < deadline:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            if dht.handle(a):
                continue
            if isinstance(a, lt.metadata_received_alert):
                ti = h.torrent_file()
                emit({"event": "metadata", "info_hash": v1 or v2})
            elif isinstance(a, lt.torrent_checked_alert):
                if ti is None:
                    ti = h.torrent_file()
                if ti is None:
                    # A magnet's torrent is "checked" before its metadata: nothing to report yet.
                    continue
                st = h.status()
                checked = True
                if seed:
                    if st.num_pieces != ti.num_pieces():
                        emit({"event": "error", "message": "only %d of %d pieces verified in %s"
                              % (st.num_pieces, ti.num_pieces(), args.save_dir)})
                        return 2
                    emit({"event": "seeding", "port": ses.listen_port(), "info_hash": v1 or v2})
                else:
                    emit({"event": "ready", "port": ses.listen_port(), "info_hash": v1 or v2,
                          "pieces": st.num_pieces, "num_pieces": ti.num_pieces()})
                    if st.num_pieces == ti.num_pieces() and not complete:
                        complete = True
                        finish()
                for p in peers:
                    connect(p)
            elif isinstance(a, lt.torrent_finished_alert):
                # Every piece downloaded and verified: flush what libtorrent still holds, then say so.
                if not seed and checked and not complete and flushing is None:
                    h.flush_cache()
                    flushing = time.monotonic()
            elif isinstance(a, lt.cache_flushed_alert):
                if flushing is not None and not complete:
                    complete = True
                    finish()
            elif isinstance(a, lt.torrent_paused_alert):
                emit({"event": "paused"})
            elif isinstance(a, lt.tracker_reply_alert):
                emit({"event": "announced", "url": a.tracker_url(), "num_peers": a.num_peers})
            elif isinstance(a, (lt.tracker_error_alert, lt.tracker_warning_alert)):
                emit({"event": "tracker_error", "url": a.tracker_url(), "message": a.message()})
            elif isinstance(a, (lt.incoming_connection_alert, lt.peer_connect_alert)):
                ep = a.endpoint
                incoming = isinstance(a, lt.incoming_connection_alert)
                emit({"event": "peer", "ip": str(ep[0]), "port": ep[1], "incoming": incoming})
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                emit({"event": "error", "message": a.message()})
                return 2
        while not commands.empty():
            line = commands.get()
            verb, _, rest = line.partition(" ")
            if verb == "connect":
                connect(parse_endpoint(rest.strip(), "connect"))
            elif verb == "pause":
                # Graceful: the trackers get `stopped`; torrent_paused_alert follows.
                h.pause(lt.torrent_handle.graceful_pause)
            elif verb == "resume":
                h.resume()
                emit({"event": "resumed"})
            elif dht.command(verb, rest.strip(), h):
                pass
            elif line:
                emit({"event": "error", "message": "unknown command %r" % line})
        now = time.monotonic()
        dht.poll(now)
        # The flush alert may not come (nothing left to flush): the files are complete all the same.
        if flushing is not None and not complete and now - flushing > 5.0:
            complete = True
            finish()
        if checked and now >= next_report:
            next_report = now + 1.0
            st = h.status()
            up = st.all_time_upload
            if up != last_uploaded and up > 0:
                emit({"event": "uploaded", "bytes": up})
            last_uploaded = up
            if not seed and ti is not None:
                progress = (st.num_pieces, st.all_time_download, st.num_peers)
                if progress != last_progress:
                    emit({"event": "progress", "pieces": st.num_pieces, "num_pieces": ti.num_pieces(),
                          "downloaded": st.all_time_download, "num_peers": st.num_peers,
                          "state": str(st.state)})
                last_progress = progress
    emit({"event": "timeout", "seconds": args.timeout})
    return 3


def main():
    p = argparse.ArgumentParser(prog="lt_tool.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--version", choices=["v1", "v2", "hybrid"], default="hybrid")
    c.add_argument("--piece-length", type=int, default=0)
    c.add_argument("--tracker", action="append")
    c.add_argument("path")
    c.add_argument("out")
    i = sub.add_parser("info")
    i.add_argument("torrent")
    k = sub.add_parser("check")
    k.add_argument("torrent")
    k.add_argument("save_dir")
    k.add_argument("--timeout", type=float, default=120.0)
    sd = sub.add_parser("seed")
    sd.add_argument("torrent")
    sd.add_argument("save_dir")
    sd.add_argument("--listen", required=True)
    sd.add_argument("--timeout", type=float, default=300.0)
    sd.add_argument("--peer", action="append")
    sd.add_argument("--upload-limit", type=int, default=0)
    sd.add_argument("--download-limit", type=int, default=0)
    dl = sub.add_parser("download")
    dl.add_argument("torrent")
    dl.add_argument("save_dir")
    dl.add_argument("--listen", required=True)
    dl.add_argument("--timeout", type=float, default=300.0)
    dl.add_argument("--peer", action="append")
    dl.add_argument("--upload-limit", type=int, default=0)
    dl.add_argument("--download-limit", type=int, default=0)
    dn = sub.add_parser("dht-node")
    dn.add_argument("--listen", required=True)
    dn.add_argument("--timeout", type=float, default=300.0)
    for sp in (sd, dl, dn):
        sp.add_argument("--dht", action="store_true")
        sp.add_argument("--dht-bootstrap", action="append")
        sp.add_argument("--dht-router", action="append")
        sp.add_argument("--dht-announce-interval", type=int, default=0)
    for sp in (sd, dl):
        sp.add_argument("--no-trackers", action="store_true")
    args = p.parse_args()
    try:
        if args.cmd == "create":
            return cmd_create(args)
        if args.cmd == "info":
            return cmd_info(args)
        if args.cmd in ("seed", "download"):
            return cmd_session(args, args.cmd == "seed")
        if args.cmd == "dht-node":
            return cmd_dht_node(args)
        return cmd_check(args)
    except RuntimeError as e:
        print("lt_tool %s: %s" % (args.cmd, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
