#!/usr/bin/env python3
"""A stand-in for a search engine flusso must refuse, for test/t/016_engines.pl.

No real unsupported engine (Elasticsearch 7 or 9, OpenSearch 1) can be
started here, so this answers GET / with the JSON in ANSWER_FILE (read
again on every request, so a test can change what it claims to be) and
every other request with 503.  Each request line is appended to LOG_FILE:
the test checks that flusso sent nothing but GET /.

Usage: unsupported.py ANSWER_FILE LOG_FILE   (prints the URL, then serves)
"""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        with open(sys.argv[2], "a") as log:
            log.write(f"{self.command} {self.path}\n")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.command == "GET" and self.path == "/":
            with open(sys.argv[1], "rb") as f:
                body, status = f.read(), 200
        else:
            body, status = b'{"error":"not a supported engine","status":503}', 503
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = answer

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
