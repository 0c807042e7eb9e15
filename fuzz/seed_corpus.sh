#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the real-tool fixtures and the hostile corpus of crates/metainfo/tests
# (fuzz/corpus is not committed). Safe to run again: files are named by content hash.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tests="$here/../crates/metainfo/tests"
corpus="$here/corpus"
mkdir -p "$corpus/bencode_decode" "$corpus/metainfo_parse" "$corpus/magnet_parse" "$corpus/wire_decode" \
  "$corpus/udp_request" "$corpus/http_announce_query" "$corpus/http_response" "$corpus/krpc_decode"

add() { # add TARGET FILE
  local sum
  sum="$(sha1sum "$2" | cut -c1-40)"
  cp "$2" "$corpus/$1/$sum"
}

for f in "$tests"/fixtures/*.torrent "$tests"/hostile/*.torrent; do
  add bencode_decode "$f"
  add metainfo_parse "$f"
done

# Peer wire streams captured from libtorrent and Transmission.
for f in "$here"/../crates/wire/tests/fixtures/*.bin; do
  [ -e "$f" ] && add wire_decode "$f"
done
# Tracker requests and responses captured from real clients and opentracker.
for f in "$here"/../crates/tracker-proto/tests/fixtures/*; do
  case "$f" in
    */opentracker-http-*) add http_response "$f" ;;
    */opentracker-udp-*) ;;
    *-udp-*.bin) add udp_request "$f" ;;
    *.query) add http_announce_query "$f" ;;
  esac
done

# KRPC packets captured from libtorrent and aria2, and the BEP 5 examples.
for f in "$here"/../crates/dht/tests/fixtures/*.bin; do
  [ -e "$f" ] && add krpc_decode "$f"
done

# Magnet links: the bad ones from the hostile corpus, plus good ones for each torrent fixture.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
n=0
while IFS=$'\t' read -r link _; do
  [ -n "$link" ] || continue
  n=$((n + 1))
  printf '%s' "$link" >"$tmp/bad-$n"
  add magnet_parse "$tmp/bad-$n"
done <"$tests/hostile/magnets.txt"
good=(
  "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&dn=name&tr=udp%3A%2F%2F127.0.0.1%3A1"
  "magnet:?xt=urn:btmh:1220d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb&x.pe=%5B%3A%3A1%5D%3A2&so=1,3-5"
  "magnet:?xt=urn:btih:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C&ws=http%3A%2F%2Fw%2F&x.pe=h:1&dn=a+b%20c"
)
for i in "${!good[@]}"; do
  printf '%s' "${good[$i]}" >"$tmp/good-$i"
  add magnet_parse "$tmp/good-$i"
done
bep5=(
  "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
  "d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re"
  "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe"
  "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe"
  "d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re"
  "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe"
  "d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"
)
for i in "${!bep5[@]}"; do
  printf '%s' "${bep5[$i]}" >"$tmp/bep5-$i"
  add krpc_decode "$tmp/bep5-$i"
done
for t in bencode_decode metainfo_parse magnet_parse wire_decode udp_request http_announce_query http_response krpc_decode; do
  echo "seed_corpus: $t: $(ls "$corpus/$t" | wc -l) files"
done
