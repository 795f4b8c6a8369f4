#!/usr/bin/env python3
"""Generates src/command/table_data.rs from a real redis-server's COMMAND INFO and COMMAND DOCS.

Usage: scripts/gen_command_table.py [--port P] [--out PATH]

Without --port a temporary redis-server is started on a free port and stopped afterwards.
Only the python3 standard library is used; the RESP3 reader below is just enough for
COMMAND INFO / COMMAND DOCS (HELLO 3 so maps and sets keep their shape and order).
The output is deterministic: commands and subcommands are sorted by name, and everything
else keeps Redis's own order.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "src", "command", "table_data.rs")


# --- a tiny RESP3 client ------------------------------------------------------------------


class Map(list):
    """A RESP3 map as an ordered list of (key, value) pairs."""

    def get(self, key, default=None):
        for k, v in self:
            if k == key:
                return v
        return default


class Set(list):
    pass


class RespError(Exception):
    pass


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.read()

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+",):
            return rest.decode()
        if t == b"-":
            raise RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t in (b"$", b"="):
            n = int(rest)
            if n < 0:
                return None
            s = self._exact(n).decode()
            return s[4:] if t == b"=" else s
        if t == b"_":
            return None
        if t == b"#":
            return rest == b"t"
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            items = [self.read() for _ in range(n)]
            return Set(items) if t == b"~" else items
        if t == b"%":
            n = int(rest)
            return Map((self.read(), self.read()) for _ in range(n))
        raise ValueError("unexpected RESP type %r" % line)


# --- a temporary redis-server ---------------------------------------------------------------


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server():
    exe = shutil.which("redis-server")
    if not exe:
        sys.exit("redis-server not found")
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if proc.poll() is not None:
                break  # port race: try another port
            try:
                c = Conn(port)
                c.send("PING")
                c.sock.close()
                return proc, port
            except (OSError, EOFError, RespError):
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    sys.exit("could not start redis-server")


# --- Rust rendering -------------------------------------------------------------------------


def lit(s):
    out = ['"']
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u{%x}" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def opt(s):
    return "None" if s is None else "Some(%s)" % lit(s)


def strs(items):
    return "&[" + ", ".join(lit(x) for x in items) + "]"


def flag_expr(names):
    # Bits by name from table::flags; an unknown flag would be a new Redis flag we must add.
    parts = []
    for n in names:
        ident = n.upper()
        if ident not in KNOWN_FLAGS:
            sys.exit("unknown command flag %r: add it to table::flags" % n)
        parts.append("flags::" + ident)
    return " | ".join(parts) if parts else "0"


KNOWN_FLAGS = {
    "WRITE", "READONLY", "DENYOOM", "MODULE", "ADMIN", "PUBSUB", "NOSCRIPT", "BLOCKING",
    "LOADING", "STALE", "SKIP_MONITOR", "SKIP_SLOWLOG", "ASKING", "FAST", "NO_AUTH",
    "MAY_REPLICATE", "SENTINEL", "ONLY_SENTINEL", "NO_MANDATORY_KEYS", "PROTECTED",
    "MODULE_GETKEYS", "MODULE_NO_CLUSTER", "NO_ASYNC_LOADING", "NO_MULTI", "MOVABLEKEYS",
    "ALLOW_BUSY", "MODULE_GETCHANNELS", "TOUCHES_ARBITRARY_KEYS",
}


def key_spec(ks, ind):
    bs = ks.get("begin_search")
    fk = ks.get("find_keys")
    bt, bspec = bs.get("type"), bs.get("spec")
    if bt == "index":
        begin = "BeginSearch::Index(%d)" % bspec.get("index")
    elif bt == "keyword":
        begin = "BeginSearch::Keyword { keyword: %s, startfrom: %d }" % (
            lit(bspec.get("keyword")), bspec.get("startfrom"))
    else:
        begin = "BeginSearch::Unknown"
    ft, fspec = fk.get("type"), fk.get("spec")
    if ft == "range":
        find = "FindKeys::Range { lastkey: %d, step: %d, limit: %d }" % (
            fspec.get("lastkey"), fspec.get("keystep"), fspec.get("limit"))
    elif ft == "keynum":
        find = "FindKeys::Keynum { keynumidx: %d, firstkey: %d, step: %d }" % (
            fspec.get("keynumidx"), fspec.get("firstkey"), fspec.get("keystep"))
    else:
        find = "FindKeys::Unknown"
    return (
        "%sKeySpec {\n%s    notes: %s,\n%s    flags: %s,\n%s    begin_search: %s,\n%s    find_keys: %s,\n%s}"
        % (ind, ind, opt(ks.get("notes")), ind, strs(ks.get("flags") or []), ind, begin, ind, find, ind)
    )


def doc_arg(a, ind):
    sub = a.get("arguments") or []
    ksi = a.get("key_spec_index")
    fields = [
        ("name", lit(a.get("name"))),
        ("kind", lit(a.get("type"))),
        ("display_text", opt(a.get("display_text"))),
        ("key_spec_index", "None" if ksi is None else "Some(%d)" % ksi),
        ("token", opt(a.get("token"))),
        ("summary", opt(a.get("summary"))),
        ("since", opt(a.get("since"))),
        ("deprecated_since", opt(a.get("deprecated_since"))),
        ("flags", strs(a.get("flags") or [])),
        ("value", opt(a.get("value"))),
        ("arguments", doc_args(sub, ind + "    ")),
    ]
    body = "".join("%s    %s: %s,\n" % (ind, k, v) for k, v in fields)
    return "%sDocArg {\n%s%s}" % (ind, body, ind)


def doc_args(args, ind):
    if not args:
        return "&[]"
    return "&[\n" + "".join(doc_arg(a, ind + "    ") + ",\n" for a in args) + ind + "]"


def docs_expr(d, ind):
    hist = d.get("history") or []
    hist_s = "&[" + ", ".join("(%s, %s)" % (lit(v), lit(t)) for v, t in hist) + "]"
    fields = [
        ("summary", lit(d.get("summary") or "")),
        ("since", lit(d.get("since") or "")),
        ("group", lit(d.get("group") or "")),
        ("complexity", opt(d.get("complexity"))),
        ("doc_flags", strs(d.get("doc_flags") or [])),
        ("deprecated_since", opt(d.get("deprecated_since"))),
        ("replaced_by", opt(d.get("replaced_by"))),
        ("history", hist_s),
        ("arguments", doc_args(d.get("arguments") or [], ind + "    ")),
    ]
    body = "".join("%s    %s: %s,\n" % (ind, k, v) for k, v in fields)
    return "CommandDocs {\n%s%s}" % (body, ind)


def command(info, docs, ind, comment=None):
    name, arity, flags, first, last, step, acl, tips, specs, subs = info[:10]
    sub_docs = docs.get("subcommands") or Map()
    subs = sorted(subs, key=lambda s: s[0])
    sub_entries = []
    for s in subs:
        sub_entries.append(command(s, sub_docs.get(s[0]) or Map(), ind + "        ", s[-1] if len(s) > 10 else None))
    if sub_entries:
        subs_s = "&[\n" + "".join(sub_entries) + ind + "    ]"
    else:
        subs_s = "&[]"
    if specs:
        specs_s = "&[\n" + "".join(key_spec(k, ind + "        ") + ",\n" for k in specs) + ind + "    ]"
    else:
        specs_s = "&[]"
    fields = [
        ("name", lit(name.lower())),
        ("arity", str(arity)),
        ("flags", flag_expr(flags)),
        ("acl_categories", strs(c.lstrip("@") for c in acl)),
        ("tips", strs(tips)),
        ("first_key", str(first)),
        ("last_key", str(last)),
        ("step", str(step)),
        ("key_specs", specs_s),
        ("subcommands", subs_s),
        ("docs", docs_expr(docs, ind + "    ")),
    ]
    body = "".join("%s    %s: %s,\n" % (ind, k, v) for k, v in fields)
    head = "%s// %s\n" % (ind, comment) if comment else ""
    return "%s%sCommandSpec {\n%s%s},\n" % (head, ind, body, ind)


# Redis 7.2's CLIENT SETINFO: clients (redis-py, go-redis, Lettuce, ...) send it on connect,
# and our 7.0-based table must know it so the proxy answers OK instead of "unknown subcommand".
CLIENT_SETINFO_INFO = [
    "client|setinfo", 4, ["noscript", "loading", "stale"], 0, 0, 0,
    ["@slow", "@connection"], [], [], [],
    "ADDITION: Redis 7.2's CLIENT SETINFO, not in the generating 7.0 server.",
]
CLIENT_SETINFO_DOCS = Map([
    ("summary", "Sets information specific to the client or connection."),
    ("since", "7.2.0"),
    ("group", "connection"),
    ("complexity", "O(1)"),
    ("arguments", [Map([
        ("name", "attr"), ("type", "oneof"),
        ("arguments", [
            Map([("name", "libname"), ("type", "string"), ("token", "LIB-NAME")]),
            Map([("name", "libver"), ("type", "string"), ("token", "LIB-VER")]),
        ]),
    ])]),
])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    proc = None
    port = args.port
    if port is None:
        proc, port = start_server()
    try:
        c = Conn(port)
        c.send("HELLO", "3")
        infos = c.send("COMMAND", "INFO")
        docs = c.send("COMMAND", "DOCS")
        version = c.send("INFO", "server")
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()

    ver = next((l.split(":", 1)[1].strip() for l in version.splitlines() if l.startswith("redis_version:")), "?")
    infos = sorted((i for i in infos if i is not None), key=lambda i: i[0])
    for info in infos:
        if info[0] == "client" and not any(s[0] == "client|setinfo" for s in info[9]):
            info[9] = list(info[9]) + [CLIENT_SETINFO_INFO]
            cd = docs.get("client")
            subdocs = cd.get("subcommands")
            subdocs.append(("client|setinfo", CLIENT_SETINFO_DOCS))

    out = [
        "//! Generated by scripts/gen_command_table.py from redis-server %s's COMMAND INFO and\n" % ver,
        "//! COMMAND DOCS. Do not edit by hand: re-run the script.\n",
        "\n",
        "use super::table::*;\n",
        "\n",
        "#[rustfmt::skip]\n",
        "#[allow(clippy::all)]\n",
        "pub static COMMANDS: &[CommandSpec] = &[\n",
    ]
    for info in infos:
        out.append(command(info, docs.get(info[0]) or Map(), "    "))
    out.append("];\n")
    with open(args.out, "w") as f:
        f.write("".join(out))
    print("wrote %d commands to %s" % (len(infos), os.path.relpath(args.out)))


if __name__ == "__main__":
    main()
