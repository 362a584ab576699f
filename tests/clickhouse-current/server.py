"""Current ClickHouse behind ClickHouse's HTTP interface, for the collector's ClickHouse tests.

Debian installs ClickHouse 18.16; the store's SQL must also run on current ClickHouse, which
cannot be downloaded on these machines. chDB (on PyPI) is the current ClickHouse engine as a
library, without a server: this file gives it the part of the HTTP interface the collector uses
(`GET /ping`; `POST /` with the statement in the body, or in `?query=` with the rows in the body,
as text or in a binary format; external data as `multipart/form-data` parts with `NAME_structure`
and `NAME_format` parameters; settings as URL parameters; errors as a non-200 status with
ClickHouse's message). Binary rows and external data pass through temporary files, read with
`FROM INFILE` (chDB's queries are text). The SQL
engine, its functions, table engines, merges and mutations are ClickHouse's own, in the version
chDB ships.

Run: python server.py --port PORT --path DIR   (the tests start it: FOOTFALL_TEST_CLICKHOUSE=current)
"""

import argparse
import os
import re
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from chdb import session as chs

# Parameters of the HTTP interface that are not settings.
NOT_SETTINGS = {"query", "database", "user", "password", "default_format"}

# An INSERT whose rows come in the body in a binary format.
# A SELECT answered in RowBinary or Native: its bytes go back as they are.
BINARY_SELECT = re.compile(r"\bFORMAT\s+(RowBinary|Native)\s*$", re.I)
BINARY_INSERT = re.compile(r"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+(RowBinary|Native)\s*$", re.I | re.S)


def multipart(content_type, body):
    """The parts of a `multipart/form-data` body: (field name, bytes)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ValueError("multipart body without a boundary")
    delimiter = b"--" + m.group(1).encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if name:
            parts.append((name.group(1).decode(), data[:-2] if data.endswith(b"\r\n") else data))
    return parts


def spill(data):
    """Writes bytes to a temporary file for `FROM INFILE`; returns its path."""
    fd, path = tempfile.mkstemp(prefix="chdb-rows-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def repair_empty_totals(text):
    """chDB writes an empty result `WITH TOTALS` in `FORMAT JSON` out of order: the end of the
    data array and the totals come first, then the head, the start of the data array and the
    tail. A ClickHouse server writes them in order; this puts them back in order."""
    head_at = text.find('{\n\t"meta"')
    if not text.startswith("\n\t],") or head_at < 0:
        return text
    totals, rest = text[:head_at], text[head_at:]
    cut = rest.find('"data":\n\t[\n')
    if cut < 0:
        return text
    cut += len('"data":\n\t[\n')
    return rest[:cut] + totals + rest[cut:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    args = ap.parse_args()
    sess = chs.Session(args.path)
    lock = threading.Lock()  # one chDB session answers one statement at a time

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # An answer's head and body go out as two writes: with Nagle's algorithm the second
        # waits for the client's delayed ACK of the first, 40 ms on Linux, on every statement
        # (the store suite spent 270 of its 380 s so).
        disable_nagle_algorithm = True

        def log_message(self, *a):
            pass

        def answer(self, status, text):
            body = text if isinstance(text, bytes) else text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if urlsplit(self.path).path == "/ping":
                self.answer(200, "Ok.\n")
            else:
                self.run(b"")

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            self.run(self.rfile.read(n))

        def run(self, body):
            params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            sql = params.get("query", "")
            external = []  # (table name, structure, format, file)
            files = []
            content_type = self.headers.get("Content-Type", "")
            try:
                if content_type.startswith("multipart/form-data"):
                    for name, data in multipart(content_type, body):
                        path = spill(data)
                        files.append(path)
                        external.append((name, params[f"{name}_structure"], params.get(f"{name}_format", "TabSeparated"), path))
                    body = b""
                binary = BINARY_INSERT.match(sql) if body else None
                if binary:
                    path = spill(body)
                    files.append(path)
                    sql = f"{binary.group(1)} FROM INFILE '{path}' FORMAT {binary.group(2)}"
                else:
                    text = body.decode("utf-8")
                    sql = f"{sql}\n{text}" if sql else text
                ext_params = {f"{n}_{k}" for n, *_ in external for k in ("structure", "format")}
                settings = ", ".join(
                    f"{k} = {v if v.lstrip('-').isdigit() else repr(v)}"
                    for k, v in params.items()
                    if k not in NOT_SETTINGS and k not in ext_params
                )
                with lock:
                    if "database" in params:
                        sess.query(f"USE {params['database']}")
                    if settings:
                        sess.query(f"SET {settings}")
                    try:
                        for name, structure, fmt, path in external:
                            sess.query(f"CREATE TEMPORARY TABLE {name} ({structure}) ENGINE = Memory")
                            sess.query(f"INSERT INTO {name} FROM INFILE '{path}' FORMAT {fmt}")
                        out = sess.query(sql, "TabSeparated")
                    finally:
                        for name, *_ in external:
                            sess.query(f"DROP TEMPORARY TABLE IF EXISTS {name}")
                data = out.bytes() if out is not None else b""
                if BINARY_SELECT.search(sql):
                    self.answer(200, data)
                else:
                    self.answer(200, repair_empty_totals(data.decode("utf-8")))
            except Exception as e:  # ClickHouse's own error, as its server would send it
                self.answer(500, str(e))
            finally:
                for path in files:
                    os.unlink(path)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"chDB {sess.query('SELECT version()', 'TabSeparated').bytes().decode().strip()} on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
