"""A misbehaving HTTP backend for the reverse proxy's attack tests: `python evil_backend.py PORT`.

By path: /split (a header with a bare CR), /cl-te (Content-Length with chunked), /endless-header
(header lines forever), /endless-body (a chunked body forever), /slowloris (half a status line,
then nothing), /close-mid (Content-Length 100, 10 bytes, close), /no-response (close at once),
/stall-body (head and part of a body, then nothing), /hop (hop-by-hop headers), /flood (256 MiB, progress in $EVIL_LOG.flood), anything else a plain 200.
Every request line it receives is appended to the file named by EVIL_LOG.
"""

import os
import socket
import sys
import threading
import time

LOG = os.environ.get("EVIL_LOG", "")


def handle(conn):
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            more = conn.recv(65536)
            if not more:
                return
            data += more
        line = data.split(b"\r\n", 1)[0]
        if LOG:
            with open(LOG, "ab") as f:
                f.write(data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"|") + b"\n")
        path = line.split(b" ")[1] if b" " in line else b"/"
        path = b"/" + path.split(b"?")[0].rsplit(b"/", 1)[-1]  # by the last segment
        if path.startswith(b"/split"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok")
        elif path.startswith(b"/cl-te"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")
        elif path.startswith(b"/endless-header"):
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while True:
                conn.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
        elif path.startswith(b"/endless-body"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while True:
                conn.sendall(b"4000\r\n" + b"e" * 0x4000 + b"\r\n")
        elif path.startswith(b"/slowloris"):
            conn.sendall(b"HTTP/1.1 2")
            time.sleep(60)
        elif path.startswith(b"/stall-body"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"s" * 10)
            time.sleep(60)
        elif path.startswith(b"/close-mid"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"c" * 10)
        elif path.startswith(b"/flood"):
            # 256 MiB as fast as the proxy takes it; how far it got is in $EVIL_LOG.flood
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (256 << 20))
            block = b"f" * 65536
            for i in range(4096):
                conn.sendall(block)
                with open(LOG + ".flood", "w") as f:
                    f.write(str((i + 1) * 65536))
        elif path.startswith(b"/hop"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: X-Secret, close\r\nX-Secret: 1\r\n"
                         b"Keep-Alive: timeout=5\r\nProxy-Connection: x\r\nContent-Length: 3\r\n\r\nhop")
        elif path.startswith(b"/no-response"):
            pass
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfine")
    except OSError:
        pass
    finally:
        conn.close()


def main(port: int) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main(int(sys.argv[1]))
