"""moto's own server (`moto.server`, pinned in requirements.txt), with one change:
DynamoDB requests are applied one at a time.

DynamoDB applies each request atomically: a conditional write, or a
TransactWriteItems, is checked and written as one step, so two sessions racing
for the last of a daily cap cannot both pass. moto's threaded server runs each
request in its own thread with no lock in its DynamoDB backend, so two
concurrent transactions can both read the old counter and both pass their
conditions (seen: 12 of 20 reservations of 0.01 passed a 0.10 cap). A lock
around DynamoDB requests gives moto the atomicity the real service has; S3 and
AgentCore requests stay concurrent.

Usage: python moto_server.py -H 127.0.0.1 -p PORT
"""

import argparse
import os
import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


class OneDynamoDbRequestAtATime:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            # The whole answer is computed under the lock.
            return list(self.app(environ, start_response))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    # moto reads its own port from here (as `moto_server` sets it).
    os.environ.setdefault("MOTO_PORT", str(args.port))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        OneDynamoDbRequestAtATime(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
