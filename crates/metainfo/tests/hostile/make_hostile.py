#!/usr/bin/env python3
"""Writes the hostile corpus next to this script: small bad .torrent files, built byte by byte with a
hand-written bencode writer (so the writer can also emit what no library would: unsorted or duplicate keys,
non-canonical integers, bad lengths, truncation), plus

  cases.json   file name -> {"error": substring the error must contain,
                             "where": substring naming the place (a `field` or "at byte N")}
  magnets.txt  one bad magnet link per line: LINK<TAB>substring its error must contain

Deterministic: running it again rewrites the same bytes. Needs only python3 (no libtorrent).

Usage: python3 crates/metainfo/tests/hostile/make_hostile.py
"""

import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PIECE = 16384
TRACKER = b"http://127.0.0.1:1/announce"


# --------------------------------------------------------------------------------------------------------
# A bencode writer that does what it is told.


class Raw:
    """Bytes written as they are."""

    def __init__(self, b):
        self.b = b


class Pairs:
    """A dictionary written in exactly the given key order (duplicates allowed)."""

    def __init__(self, *pairs):
        self.pairs = pairs


def enc(v):
    if isinstance(v, Raw):
        return v.b
    if isinstance(v, bool):
        raise TypeError("no bools in bencode")
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(enc(x) for x in v) + b"e"
    if isinstance(v, Pairs):
        return b"d" + b"".join(enc(k) + enc(x) for k, x in v.pairs) + b"e"
    if isinstance(v, dict):
        items = sorted(((k.encode() if isinstance(k, str) else k), x) for k, x in v.items())
        return b"d" + b"".join(enc(k) + enc(x) for k, x in items) + b"e"
    raise TypeError(type(v))


# --------------------------------------------------------------------------------------------------------
# Hashes and BEP 52 merkle roots.


def sha1(b):
    return hashlib.sha1(b).digest()


def sha256(b):
    return hashlib.sha256(b).digest()


def fake_pieces(n, seed=b"p"):
    return b"".join(sha1(seed + b"%d" % i) for i in range(n))


def fake_root(seed):
    return sha256(b"root/" + seed)


def zero_subtree(leaves):
    h = bytes(32)
    n = 1
    while n < leaves:
        h = sha256(h + h)
        n *= 2
    return h


def root_from_layer(layer, piece_length=PIECE):
    """The pieces root of a file from its piece layer (as BEP 52 defines it)."""
    pad = zero_subtree(piece_length // PIECE)
    width = 1
    while width < len(layer):
        width *= 2
    level = list(layer) + [pad] * (width - len(layer))
    while len(level) > 1:
        level = [sha256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def layer_for(length, seed=b"L"):
    n = -(-length // PIECE)
    layer = [sha256(seed + b"%d" % i) for i in range(n)]
    return layer, root_from_layer(layer)


# --------------------------------------------------------------------------------------------------------
# Valid bases that each case breaks in one way.


def v1_single(**over):
    info = {"length": 40000, "name": "a.bin", "piece length": PIECE, "pieces": fake_pieces(3)}
    info.update(over)
    return {"announce": TRACKER, "info": info}


def v1_multi(files=None, pieces=None, **over):
    if files is None:
        files = [{"length": 10, "path": ["a.txt"]}, {"length": 20, "path": ["d", "b.txt"]}]
    total = sum(f["length"] for f in files if isinstance(f, dict) and isinstance(f.get("length"), int))
    if pieces is None:
        pieces = fake_pieces(max(1, -(-total // PIECE)))
    info = {"files": files, "name": "multi", "piece length": PIECE, "pieces": pieces}
    info.update(over)
    return {"announce": TRACKER, "info": info}


BIG = 40000  # three 16 KiB pieces: needs a piece layer
BIG_LAYER, BIG_ROOT = layer_for(BIG)
SMALL_ROOT = fake_root(b"small")


def leaf(length, root):
    d = {"length": length}
    if root is not None:
        d["pieces root"] = root
    return {"": d}


def v2(tree=None, layers=None, **over):
    if tree is None:
        tree = {"a.bin": leaf(BIG, BIG_ROOT), "d": {"b.txt": leaf(100, SMALL_ROOT)}}
    if layers is None:
        layers = {BIG_ROOT: b"".join(BIG_LAYER)}
    info = {"file tree": tree, "meta version": 2, "name": "v2", "piece length": PIECE}
    info.update(over)
    return {"announce": TRACKER, "info": info, "piece layers": layers}


def hybrid(files=None, tree=None, pieces=None, **over):
    if files is None:
        files = [
            {"length": BIG, "path": ["a.bin"]},
            {"attr": "p", "length": 3 * PIECE - BIG, "path": [".pad", str(3 * PIECE - BIG)]},
            {"length": 100, "path": ["b.txt"]},
        ]
    if tree is None:
        tree = {"a.bin": leaf(BIG, BIG_ROOT), "b.txt": leaf(100, SMALL_ROOT)}
    total = sum(f["length"] for f in files)
    if pieces is None:
        pieces = fake_pieces(-(-total // PIECE))
    t = v2(tree=tree, **over)
    t["info"]["files"] = files
    t["info"]["pieces"] = pieces
    t["info"]["name"] = "hybrid"
    return t


# --------------------------------------------------------------------------------------------------------
# The cases.

CASES = {}


def case(name, data, error, where):
    """`data` is a bencode-able value or raw bytes; `where` is a field in backticks or a callable giving
    "at byte N" from the bytes."""
    if not isinstance(data, bytes):
        data = enc(data)
    if callable(where):
        where = where(data)
    assert name not in CASES, name
    CASES[name + ".torrent"] = (data, error, where)


def at(marker, delta=0, nth=0):
    """Offset of the `nth` occurrence of `marker`, plus `delta`."""

    def f(data):
        i = -1
        for _ in range(nth + 1):
            i = data.index(marker, i + 1)
        return "at byte %d" % (i + delta)

    return f


def at_end(data):
    return "at byte %d" % len(data)


DOT = "it has a `.` or `..` component"
SEP = "a component contains a path separator"
EMPTY = "it has an empty component"

# ---- path traversal, every form ------------------------------------------------------------------------
f0 = "`info.files[0].path`"
case("path-dotdot", v1_multi([{"length": 10, "path": ["..", "..", "etc", "passwd"]}]), DOT, f0)
case("path-dotdot-last", v1_multi([{"length": 10, "path": ["a", ".."]}]), DOT, f0)
case("path-dot", v1_multi([{"length": 10, "path": ["a", ".", "b"]}]), DOT, f0)
case("path-absolute", v1_multi([{"length": 10, "path": ["/etc/passwd"]}]), SEP, f0)
case("path-leading-slash", v1_multi([{"length": 10, "path": ["/", "etc", "passwd"]}]), SEP, f0)
case("path-dotdot-inside-component", v1_multi([{"length": 10, "path": ["a/../../b"]}]), SEP, f0)
case("path-backslash-dotdot", v1_multi([{"length": 10, "path": ["..\\..\\windows\\win.ini"]}]), SEP, f0)
case("path-backslash", v1_multi([{"length": 10, "path": ["a\\b"]}]), SEP, f0)
case("path-windows-drive", v1_multi([{"length": 10, "path": ["C:\\evil.exe"]}]), SEP, f0)
case("path-unc", v1_multi([{"length": 10, "path": ["\\\\server\\share"]}]), SEP, f0)
case("path-empty-component", v1_multi([{"length": 10, "path": ["a", "", "b"]}]), EMPTY, f0)
case("path-empty-list", v1_multi([{"length": 10, "path": []}]), "the path is empty", f0)
case("path-nul", v1_multi([{"length": 10, "path": ["evil\0.txt"]}]), "it contains a NUL byte", f0)
case(
    "path-too-many-components",
    v1_multi([{"length": 10, "path": ["d"] * 65}]),
    "it is too long",
    f0,
)
case(
    "path-utf8-dotdot",
    v1_multi([{"length": 10, "path": ["fine.txt"], "path.utf-8": ["..", "x"]}]),
    DOT,
    "`info.files[0].path.utf-8`",
)
case(
    "path-second-file",
    v1_multi([{"length": 10, "path": ["ok"]}, {"length": 10, "path": ["..", "x"]}]),
    DOT,
    "`info.files[1].path`",
)
case(
    "path-component-not-string",
    v1_multi([{"length": 10, "path": ["a", 5]}]),
    "must be a string, found integer",
    "`info.files[0].path[1]`",
)
case(
    "pad-file-dotdot",
    v1_multi([{"length": 10, "path": ["a"]}, {"attr": "p", "length": 5, "path": ["..", "pad"]}]),
    DOT,
    "`info.files[1].path`",
)
case("name-dotdot", v1_single(name=".."), DOT, "`info.name`")
case("name-dot", v1_single(name="."), DOT, "`info.name`")
case("name-empty", v1_single(name=""), EMPTY, "`info.name`")
case("name-slash", v1_single(name="../../etc/passwd"), SEP, "`info.name`")
case("name-absolute", v1_single(name="/etc/passwd"), SEP, "`info.name`")
case("name-backslash", v1_single(name="..\\evil"), SEP, "`info.name`")
case("name-nul", v1_single(name="a\0b"), "NUL byte", "`info.name`")
case("name-dotdot-multi", v1_multi(name=".."), DOT, "`info.name`")
case("name-utf8-dotdot", v1_single(**{"name.utf-8": ".."}), DOT, "`info.name.utf-8`")
case(
    "symlink-dotdot",
    v1_multi(
        [
            {"length": 10, "path": ["a"]},
            {"attr": "l", "length": 0, "path": ["link"], "symlink path": ["..", "..", "etc", "passwd"]},
        ]
    ),
    DOT,
    "`info.files[1].symlink path`",
)
case(
    "symlink-absolute",
    v1_multi(
        [
            {"length": 10, "path": ["a"]},
            {"attr": "l", "length": 0, "path": ["link"], "symlink path": ["/etc/passwd"]},
        ]
    ),
    SEP,
    "`info.files[1].symlink path`",
)
case(
    "symlink-empty",
    v1_multi([{"length": 10, "path": ["a"]}, {"attr": "l", "length": 0, "path": ["link"], "symlink path": []}]),
    "the path is empty",
    "`info.files[1].symlink path`",
)
case(
    "symlink-then-file-through-it",
    v1_multi(
        [
            {"attr": "l", "length": 0, "path": ["link"], "symlink path": ["real"]},
            {"length": 10, "path": ["link", "x"]},
        ]
    ),
    "it is both a file and a folder",
    "`info.files`",
)
case(
    "v2-tree-dotdot",
    v2(tree={"..": {"x": leaf(100, SMALL_ROOT)}}, layers={}),
    DOT,
    "`info.file tree/../x`",
)
case("v2-tree-dotdot-file", v2(tree={"..": leaf(100, SMALL_ROOT)}, layers={}), DOT, "`info.file tree/..`")
case("v2-tree-dot", v2(tree={".": {"x": leaf(100, SMALL_ROOT)}}, layers={}), DOT, "`info.file tree/./x`")
case("v2-tree-slash", v2(tree={"../../x": leaf(100, SMALL_ROOT)}, layers={}), SEP, "`info.file tree/../../x`")
case("v2-tree-backslash", v2(tree={"..\\x": leaf(100, SMALL_ROOT)}, layers={}), SEP, "`info.file tree/..\\x`")
case("v2-tree-nul", v2(tree={"a\0b": leaf(100, SMALL_ROOT)}, layers={}), "NUL byte", "`info.file tree/a")
# Control characters in a refused key are escaped in the message: it stays one line and sends no escapes.
case("v2-tree-newline", v2(tree={"a\n/b": leaf(100, SMALL_ROOT)}, layers={}), SEP, "`info.file tree/a\\n/b`")
case("v2-tree-escape", v2(tree={"\x1b[2J/x": leaf(100, SMALL_ROOT)}, layers={}), SEP,
     "`info.file tree/\\u{1b}[2J/x`")
case("path-newline", v1_multi([{"length": 10, "path": ["a\n/b"]}]), SEP, f0)
case(
    "v2-large-file-sum-overflow",
    v2(tree={"a": leaf(2**62, SMALL_ROOT), "b": leaf(2**62, SMALL_ROOT), "c": leaf(2**62, SMALL_ROOT),
             "d": leaf(2**62, SMALL_ROOT)}, layers={}),
    "the files add up to 18446744073709551616 bytes",
    "`info.file tree`",
)
case("v2-tree-root-is-a-file", v2(tree=leaf(100, SMALL_ROOT), layers={}), "the path is empty", "`info.file tree/`")
case(
    "v2-tree-empty-dir-key",
    v2(tree={"": {"x": leaf(100, SMALL_ROOT)}}, layers={}),
    "missing field `info.file tree/.length`",
    "`info.file tree/.length`",
)
case("v2-name-dotdot", v2(name=".."), DOT, "`info.name`")

# ---- resource exhaustion --------------------------------------------------------------------------------
case(
    "deep-lists",
    b"d4:info" + b"l" * 10000 + b"e" * 10000 + b"e",
    "nesting deeper than 64",
    at(b"l", 63),
)
case(
    "deep-dicts",
    b"d" + b"1:ad" * 2000 + b"e" * 2000 + b"e",
    "nesting deeper than 64",
    at(b"d", 0, 64),
)
case(
    "deep-file-tree",
    v2(tree=Raw(b"d1:a" * 80 + b"0:d6:lengthi1eee" + b"e" * 80), layers={}),
    "nesting deeper than 64",
    # The tree is at depth 3 (torrent, info, tree), so the dictionary at depth 65 is the 62nd nested one.
    lambda d: "at byte %d" % (d.index(b"d1:a" * 80) + 4 * 62),
)
case(
    "huge-string-length",
    b"d8:announce99999999999:http://x/e",
    "exceeds the limit of 268435456",
    at(b"99999999999"),
)
case(
    "huge-string-length-in-info",
    b"d4:infod4:name99999999999:abcee",
    "exceeds the limit of 268435456",
    at(b"99999999999"),
)
case(
    "string-length-past-end",
    b"d4:infod4:name1000:abcee",
    "input ends inside a value (incomplete)",
    at_end,
)
case(
    "length-sum-overflow",
    v1_multi(
        [{"length": 2**62, "path": ["a"]}, {"length": 2**62, "path": ["b"]}, {"length": 2**62, "path": ["c"]},
         {"length": 2**62, "path": ["d"]}],
        pieces=fake_pieces(1),
    ),
    "the files add up to 18446744073709551616 bytes, more than the limit of 9007199254740992",
    "`info.files`",
)
case(
    "length-over-8-pib",
    v1_single(length=2**63 - 1, pieces=fake_pieces(1)),
    "the files add up to 9223372036854775807 bytes, more than the limit of 9007199254740992",
    "`info.length`",
)
case(
    "length-too-many-pieces",
    v1_single(length=2**52, pieces=fake_pieces(1)),
    "4503599627370496 bytes in pieces of 16384 need more than 4294967295 pieces",
    "`info.length`",
)
case("length-negative", v1_single(length=-1), "-1 is negative", "`info.length`")
case(
    "length-negative-in-files",
    v1_multi([{"length": 100, "path": ["a"]}, {"length": -100, "path": ["b"]}], pieces=fake_pieces(1)),
    "-100 is negative",
    "`info.files[1].length`",
)
case(
    "length-int-overflow",
    b"d4:infod6:lengthi99999999999999999999e4:name1:ae",
    "integer out of range",
    at(b"99999999999999999999"),
)
case("length-not-int", v1_single(length="40000"), "must be an integer, found string", "`info.length`")

# ---- pieces ---------------------------------------------------------------------------------------------
case("pieces-too-few", v1_single(pieces=fake_pieces(2)), "has 2 hashes but 40000 bytes in pieces of 16384 need 3",
     "`info.pieces`")
case("pieces-too-many", v1_single(pieces=fake_pieces(4)), "has 4 hashes", "`info.pieces`")
case("pieces-empty", v1_single(pieces=b""), "has 0 hashes", "`info.pieces`")
case("pieces-not-multiple-of-20", v1_single(pieces=fake_pieces(3) + b"x"), "length 61 is not a multiple of 20",
     "`info.pieces`")
case("pieces-19-bytes", v1_single(pieces=b"x" * 19), "length 19 is not a multiple of 20", "`info.pieces`")
case("pieces-not-string", v1_single(pieces=3), "must be a string, found integer", "`info.pieces`")
case("pieces-missing", {"info": {"length": 1, "name": "a", "piece length": PIECE}}, "missing field `info.pieces`",
     "`info.pieces`")

# ---- piece length ---------------------------------------------------------------------------------------
case("piece-length-zero", v1_single(**{"piece length": 0}), "piece length 0 is not allowed", "`info.piece length`")
case("piece-length-negative", v1_single(**{"piece length": -16384}), "-16384 is negative", "`info.piece length`")
case("piece-length-1gib", v1_single(**{"piece length": 1 << 30}, pieces=fake_pieces(1)),
     "piece length 1073741824 is not allowed", "`info.piece length`")
case("piece-length-missing", {"info": {"length": 1, "name": "a", "pieces": fake_pieces(1)}},
     "missing field `info.piece length`", "`info.piece length`")
case("piece-length-string", v1_single(**{"piece length": "16384"}), "must be an integer, found string",
     "`info.piece length`")
case("v2-piece-length-not-pow2", v2(**{"piece length": 20000}), "piece length 20000 is not allowed",
     "`info.piece length`")
case("v2-piece-length-below-16k", v2(**{"piece length": 8192}), "piece length 8192 is not allowed",
     "`info.piece length`")
case("hybrid-piece-length-not-pow2", hybrid(**{"piece length": 3 * 16384}), "piece length 49152 is not allowed",
     "`info.piece length`")

# ---- truncation -----------------------------------------------------------------------------------------
good_v1 = enc(v1_multi())
case("truncated-empty", b"", "input ends inside a value (incomplete)", "at byte 0")
case("truncated-in-info", good_v1[: good_v1.index(b"4:name")], "incomplete", at_end)
case("truncated-in-pieces", good_v1[: good_v1.index(b"6:pieces") + 20], "incomplete", at_end)
case("truncated-last-byte", good_v1[:-1], "incomplete", at_end)
good_v2 = enc(v2())
case("truncated-in-piece-layers", good_v2[: good_v2.index(b"12:piece layers") + 40], "incomplete", at_end)
case("truncated-in-integer", b"d4:infod6:lengthi123", "incomplete", at_end)

# ---- non-canonical bencode ------------------------------------------------------------------------------
case("int-negative-zero", v1_single(private=Raw(b"i-0e")), "non-canonical integer", at(b"i-0e", 1))
case("int-leading-zero", v1_single(**{"piece length": Raw(b"i016384e")}), "non-canonical integer",
     at(b"i016384e", 1))
case("int-leading-zero-03", v1_single(private=Raw(b"i03e")), "non-canonical integer", at(b"i03e", 1))
case("int-empty", v1_single(private=Raw(b"ie")), "non-canonical integer", at(b"7:privateie", 10))
case("int-plus", v1_single(length=Raw(b"i+5e")), "unexpected byte 0x2b", at(b"+"))
case("string-leading-zero", v1_single(name=Raw(b"03:abc")), "invalid string length", at(b"03:abc"))
case("string-negative-length", v1_single(name=Raw(b"-3:abc")), "unexpected byte 0x2d", at(b"-3:abc"))
case(
    "unsorted-keys-top",
    Pairs((b"info", v1_single()["info"]), (b"announce", TRACKER)),
    'dictionary key "announce" is out of order',
    at(b"8:announce"),
)
case(
    "unsorted-keys-info",
    {"info": Pairs((b"piece length", PIECE), (b"name", b"a"), (b"length", 1), (b"pieces", fake_pieces(1)))},
    'dictionary key "name" is out of order',
    at(b"4:name"),
)
case(
    "duplicate-keys",
    {"info": Pairs((b"length", 1), (b"length", 2), (b"name", b"a"), (b"piece length", PIECE),
                   (b"pieces", fake_pieces(1)))},
    'duplicate dictionary key "length"',
    at(b"6:length", 0, 1),
)
case(
    "duplicate-info",
    Pairs((b"info", v1_single()["info"]), (b"info", v1_single(name="b")["info"])),
    'duplicate dictionary key "info"',
    at(b"4:info", 0, 1),
)
case("key-not-string", b"d4:infodi1e1:aee", "dictionary key is not a byte string", at(b"i1e"))
case("trailing-garbage", good_v1 + b"garbage", "trailing bytes after the value", "at byte %d" % len(good_v1))
case("trailing-newline", good_v1 + b"\n", "trailing bytes after the value", "at byte %d" % len(good_v1))
case("second-document", good_v1 + good_v1, "trailing bytes after the value", "at byte %d" % len(good_v1))
case("unexpected-byte", b"d4:infox", "unexpected byte 0x78", "at byte 7")
case("html-not-torrent", b"<html><body>404</body></html>", "unexpected byte 0x3c", "at byte 0")

# ---- structure ------------------------------------------------------------------------------------------
case("top-level-list", [v1_single()["info"]], "must be a dictionary, found list", "`torrent` at byte 0")
case("top-level-int", 42, "must be a dictionary, found integer", "`torrent` at byte 0")
case("top-level-string", enc(b"x"), "must be a dictionary, found string", "`torrent` at byte 0")
case("info-missing", {"announce": TRACKER}, "missing field `info`", "`info`")
case("info-not-dict", {"announce": TRACKER, "info": [1, 2]}, "must be a dictionary, found list",
     at(b"4:infol", 6))
case("info-string", {"info": "info"}, "must be a dictionary, found string", "`info` at byte 7")
case("name-missing", {"info": {"length": 1, "piece length": PIECE, "pieces": fake_pieces(1)}},
     "missing field `info.name`", "`info.name`")
case("name-not-string", v1_single(name=5), "must be a string, found integer", "`info.name`")
case("both-length-and-files", v1_multi(length=30), "both `length` and `files` are present", "`info.length`")
case("neither-length-nor-files", {"info": {"name": "a", "piece length": PIECE, "pieces": fake_pieces(1)}},
     "missing field `info.length or info.files`", "`info.length or info.files`")
case("files-empty-list", v1_multi([], pieces=fake_pieces(1)), "the list is empty", "`info.files`")
case("files-not-list", v1_multi(files={"a": 1}, pieces=fake_pieces(1)), "must be a list, found dictionary",
     "`info.files`")
case("file-entry-not-dict", v1_multi([["a"]], pieces=fake_pieces(1)), "must be a dictionary, found list",
     "`info.files[0]`")
case("file-missing-length", v1_multi([{"path": ["a"]}], pieces=fake_pieces(1)),
     "missing field `info.files[0].length`", "`info.files[0].length`")
case("file-missing-path", v1_multi([{"length": 10}]), "missing field `info.files[0].path`", "`info.files[0].path`")
case("file-path-not-list", v1_multi([{"length": 10, "path": "a/b"}]), "must be a list, found string",
     "`info.files[0].path`")
case(
    "files-duplicate-path",
    v1_multi([{"length": 10, "path": ["d", "a"]}, {"length": 20, "path": ["d", "a"]}]),
    "another file has the same path",
    "`info.files`",
)
case(
    "files-duplicate-after-sanitising",
    v1_multi([{"length": 10, "path": ["a\x01"]}, {"length": 20, "path": ["a\x02"]}]),
    "another file has the same path",
    "`info.files`",
)
case(
    "files-duplicate-invalid-utf8",
    v1_multi([{"length": 10, "path": [b"caf\xe9"]}, {"length": 20, "path": [b"caf\xff"]}]),
    "another file has the same path",
    "`info.files`",
)
case(
    "files-file-folder-clash",
    v1_multi([{"length": 10, "path": ["a"]}, {"length": 20, "path": ["a", "b"]}]),
    "it is both a file and a folder",
    "`info.files`",
)
case(
    "files-folder-file-clash",
    v1_multi([{"length": 10, "path": ["a", "b", "c"]}, {"length": 20, "path": ["a", "b"]}]),
    "it is both a file and a folder",
    "`info.files`",
)
case("zero-total-length", v1_single(length=0, pieces=b""), "the torrent holds no data (total length 0)",
     "`info` at byte")
case(
    "zero-total-length-multi",
    v1_multi([{"length": 0, "path": ["a"]}, {"length": 0, "path": ["b"]}], pieces=b""),
    "the torrent holds no data",
    "`info` at byte",
)
case(
    "only-pad-files",
    v1_multi([{"attr": "p", "length": 100, "path": [".pad", "100"]}]),
    "the torrent holds no data",
    "`info` at byte",
)
case("v2-zero-total-length", v2(tree={"a": leaf(0, None)}, layers={}), "holds no data", "`info` at byte")

# ---- v2 -------------------------------------------------------------------------------------------------
case(
    "v2-piece-layer-wrong-length",
    v2(layers={BIG_ROOT: b"".join(BIG_LAYER[:2])}),
    "is 64 bytes, but 3 pieces need 96",
    "`piece layers[a.bin]`",
)
case(
    "v2-piece-layer-not-multiple-of-32",
    v2(layers={BIG_ROOT: b"".join(BIG_LAYER) + b"x"}),
    "is 97 bytes, but 3 pieces need 96",
    "`piece layers[a.bin]`",
)
bad_layer = list(BIG_LAYER)
bad_layer[1] = sha256(b"tampered")
case(
    "v2-piece-layer-wrong-hashes",
    v2(layers={BIG_ROOT: b"".join(bad_layer)}),
    "does not hash to the file's pieces root",
    "`piece layers[a.bin]`",
)
case("v2-piece-layer-missing-entry", v2(layers={fake_root(b"other"): b"".join(BIG_LAYER)}),
     "missing field `piece layers[a.bin]`", "`piece layers[a.bin]`")
case("v2-piece-layers-missing", {"info": v2()["info"]}, "missing field `piece layers`", "`piece layers`")
case("v2-piece-layers-not-dict", v2(layers=[b"".join(BIG_LAYER)]), "must be a dictionary, found list",
     "`piece layers`")
case("v2-piece-layer-not-string", v2(layers={BIG_ROOT: 5}), "must be a string, found integer",
     "`piece layers[a.bin]`")
case("v2-pieces-root-31-bytes", v2(tree={"a": leaf(100, b"r" * 31)}, layers={}), "is 31 bytes, not 32",
     "`info.file tree/a.pieces root`")
case("v2-pieces-root-33-bytes", v2(tree={"a": leaf(100, b"r" * 33)}, layers={}), "is 33 bytes, not 32",
     "`info.file tree/a.pieces root`")
case("v2-pieces-root-missing", v2(tree={"a": leaf(100, None)}, layers={}),
     "missing field `info.file tree/a.pieces root`", "`info.file tree/a.pieces root`")
case("v2-file-length-missing", v2(tree={"a": {"": {"pieces root": SMALL_ROOT}}}, layers={}),
     "missing field `info.file tree/a.length`", "`info.file tree/a.length`")
case("v2-file-length-negative", v2(tree={"a": leaf(-5, SMALL_ROOT)}, layers={}), "-5 is negative",
     "`info.file tree/a.length`")
case("v2-file-tree-empty", v2(tree={}, layers={}), "an empty directory", "`info.file tree/`")
case("v2-empty-dir", v2(tree={"a": leaf(100, SMALL_ROOT), "d": {}}, layers={}), "an empty directory",
     "`info.file tree/d`")
case("v2-leaf-with-siblings", v2(tree={"a": {"": {"length": 100, "pieces root": SMALL_ROOT}, "x": leaf(1, SMALL_ROOT)}},
                                 layers={}),
     "a file entry has sibling keys", "`info.file tree/a`")
case("v2-leaf-not-dict", v2(tree={"a": {"": 100}}, layers={}), "must be a dictionary, found integer",
     "`info.file tree/a`")
case("v2-file-tree-not-dict", v2(tree=[1], layers={}), "must be a dictionary, found list", "`info.file tree/`")
case(
    "v2-duplicate-after-sanitising",
    v2(tree={"a\x01": leaf(100, SMALL_ROOT), "a\x02": leaf(100, SMALL_ROOT)}, layers={}),
    "another file has the same path",
    "`info.files`",
)
case(
    "v2-clash-after-sanitising",
    v2(tree={"a\x01": leaf(100, SMALL_ROOT), "a\x02": {"b": leaf(100, SMALL_ROOT)}}, layers={}),
    "it is both a file and a folder",
    "`info.files`",
)
case("v2-tree-without-meta-version", {"info": {k: x for k, x in v2()["info"].items() if k != "meta version"}},
     "present without `meta version` 2", "`info.file tree`")
case("meta-version-3", v2(**{"meta version": 3}), "version 3 is not supported (only 2)", "`info.meta version`")
case("meta-version-1", v1_single(**{"meta version": 1}), "version 1 is not supported", "`info.meta version`")
case("meta-version-string", v2(**{"meta version": "2"}), "must be an integer, found string", "`info.meta version`")
case("meta-version-2-without-tree", v1_single(**{"meta version": 2}), "missing field `info.file tree`",
     "`info.file tree`")

# ---- hybrid ---------------------------------------------------------------------------------------------
case(
    "hybrid-lengths-disagree",
    hybrid(tree={"a.bin": leaf(BIG, BIG_ROOT), "b.txt": leaf(101, SMALL_ROOT)}),
    "hybrid mismatch: v1 has b.txt (100 bytes), v2 has b.txt (101 bytes)",
    "`info.files[2]`",
)
case(
    "hybrid-paths-disagree",
    hybrid(tree={"a.bin": leaf(BIG, BIG_ROOT), "c.txt": leaf(100, SMALL_ROOT)}),
    "hybrid mismatch: v1 has b.txt (100 bytes), v2 has c.txt (100 bytes)",
    "`info.files[2]`",
)
case(
    "hybrid-file-counts-disagree",
    hybrid(tree={"a.bin": leaf(BIG, BIG_ROOT)}),
    "hybrid torrent lists 2 v1 files but 1 v2 files",
    "`info.files`",
)
case(
    "hybrid-no-pad",
    hybrid(files=[{"length": BIG, "path": ["a.bin"]}, {"length": 100, "path": ["b.txt"]}]),
    "hybrid file does not start on a piece boundary (missing pad file)",
    "`info.files[1]`",
)
case(
    "hybrid-short-pad",
    hybrid(
        files=[
            {"length": BIG, "path": ["a.bin"]},
            {"attr": "p", "length": 100, "path": [".pad", "100"]},
            {"length": 100, "path": ["b.txt"]},
        ]
    ),
    "does not start on a piece boundary",
    "`info.files[2]`",
)
case(
    "hybrid-v2-traversal",
    hybrid(tree={"a.bin": leaf(BIG, BIG_ROOT), "..": {"b.txt": leaf(100, SMALL_ROOT)}}),
    DOT,
    "`info.file tree/../b.txt`",
)
case(
    "hybrid-bad-piece-layer",
    hybrid(layers={BIG_ROOT: b"".join(bad_layer)}),
    "does not hash to the file's pieces root",
    "`piece layers[a.bin]`",
)

# ---- bad magnet links -----------------------------------------------------------------------------------
HEX1 = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c"
HEX2 = "631a31dd0a46257d5078c0dee4e66e26f73e42ac"
V2HEX = "d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb"
MAGNETS = [
    ("magnet:xt=urn:btih:" + HEX1, 'link does not start with "magnet:?"'),
    ("magnet:", 'does not start with "magnet:?"'),
    ("magnet:?", "missing, no urn:btih: or urn:btmh: info-hash"),
    ("magnet:?dn=name&tr=udp%3A%2F%2F127.0.0.1%3A1", "missing, no urn:btih: or urn:btmh: info-hash"),
    ("magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C", "missing, no urn:btih:"),
    ("magnet:?xt=urn:btih:", 'parameter "xt": "urn:btih:" is not a 40-hex or 32-base32 info-hash'),
    ("magnet:?xt=urn:btih:zz", 'parameter "xt": "urn:btih:zz" is not a 40-hex or 32-base32 info-hash'),
    ("magnet:?xt=urn:btih:" + HEX1[:39], "is not a 40-hex or 32-base32 info-hash"),
    ("magnet:?xt=urn:btih:" + HEX1 + "0", "is not a 40-hex or 32-base32 info-hash"),
    ("magnet:?xt=urn:btih:" + "1" * 32, "is not a 40-hex or 32-base32 info-hash"),
    ("magnet:?xt=urn:btih:" + "g" * 40, "is not a 40-hex or 32-base32 info-hash"),
    ("magnet:?xt=urn:btih:%00" + HEX1[1:], "is not a 40-hex or 32-base32 info-hash"),
    ("magnet:?xt=urn:btmh:1220" + V2HEX[:63], 'is not a "1220"-prefixed 64-hex SHA2-256 multihash'),
    ("magnet:?xt=urn:btmh:", 'is not a "1220"-prefixed 64-hex SHA2-256 multihash'),
    ("magnet:?xt=urn:btmh:zz20" + V2HEX, 'is not a "1220"-prefixed'),
    ("magnet:?xt=urn:btmh:1114" + V2HEX[:40], 'has multihash prefix "1114", only "1220" (SHA2-256) is supported'),
    ("magnet:?xt=urn:btih:%s&xt=urn:btih:%s" % (HEX1, HEX2), 'parameter "xt": two different v1 info-hashes'),
    ("magnet:?xt=urn:btmh:1220%s&xt=urn:btmh:1220%s" % (V2HEX, "00" * 32), "two different v2 info-hashes"),
    ("magnet:?xt=urn:btih:%s&dn=%%" % HEX1, 'parameter "dn": "%" has invalid percent-encoding'),
    ("magnet:?xt=urn:btih:%s&dn=%%zz" % HEX1, "has invalid percent-encoding"),
    ("magnet:?xt=urn:btih:%s&tr=udp%%3A%%2" % HEX1, 'parameter "tr": "udp%3A%2" has invalid percent-encoding'),
    ("magnet:?xt=urn:btih:%X0", 'parameter "xt": "urn:btih:%X0" has invalid percent-encoding'),
    ("magnet:?xt=urn:btih:%s&tr.3=%%FF%%FE" % HEX1, 'parameter "tr.3": "%FF%FE" is not UTF-8 after percent-decoding'),
    ("magnet:?xt=urn:btih:%s&dn=%%C3%%28" % HEX1, "is not UTF-8 after percent-decoding"),
    ("magnet:?xt=urn:btih:%s&x.pe=host" % HEX1, 'parameter "x.pe": "host" is not host:port'),
    ("magnet:?xt=urn:btih:%s&x.pe=host:0" % HEX1, 'parameter "x.pe": "host:0" is not host:port'),
    ("magnet:?xt=urn:btih:%s&x.pe=host:65536" % HEX1, 'parameter "x.pe"'),
    ("magnet:?xt=urn:btih:%s&x.pe=%%5B%%3A%%3A1%%5D" % HEX1, 'parameter "x.pe": "[::1]" is not host:port'),
    ("magnet:?xt=urn:btih:%s&x.pe=a%%2Fb:1" % HEX1, 'parameter "x.pe": "a/b:1"'),
    ("magnet:?xt=urn:btih:%s&so=5-3" % HEX1, 'parameter "so": "5-3" is not a comma-separated list'),
    ("magnet:?xt=urn:btih:%s&so=a" % HEX1, 'parameter "so": "a"'),
    ("magnet:?xt=urn:btih:%s&so=4294967296" % HEX1, 'parameter "so": "4294967296"'),
    ("magnet:?xt=urn:btih:%s&so=1,,2" % HEX1, 'parameter "so": "1,,2"'),
    ("magnet:?xt=urn:btih:%s&so=" % HEX1, 'parameter "so": ""'),
    ("magnet:?xt=urn:btih:%s%s" % (HEX1, "&x=1" * 256), "link has more than 256 parameters"),
    ("magnet:?xt=urn:btih:%s&dn=%s" % (HEX1, "a" * 65536), "bytes long, more than the limit of 65536"),
]


def main():
    for name in os.listdir(HERE):
        if name.endswith(".torrent"):
            os.remove(os.path.join(HERE, name))
    cases = {}
    for name, (data, error, where) in sorted(CASES.items()):
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        cases[name] = {"error": error, "where": where}
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(HERE, "magnets.txt"), "w") as f:
        for link, error in MAGNETS:
            assert "\t" not in link and "\n" not in link and "\t" not in error
            f.write("%s\t%s\n" % (link, error))
    print("make_hostile: %d torrents, %d magnets" % (len(cases), len(MAGNETS)), file=sys.stderr)


if __name__ == "__main__":
    main()
