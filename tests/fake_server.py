"""A stand-in server process for the lifecycle tests: /health after a delay, or death, or silence."""

import http.server
import signal
import subprocess
import sys
import time

mode, port = sys.argv[1], int(sys.argv[2])
# A grandchild in the same process group, like vLLM's engine core: stop() must reach it too.
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
if mode == "die":
    print("ValueError: Total number of attention heads (9) must be divisible by tensor parallel size (2).", flush=True)
    sys.exit(1)
if mode == "port_taken":
    print("OSError: [Errno 98] Address already in use", flush=True)
    sys.exit(1)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it
if mode == "never":
    time.sleep(600)


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


time.sleep(0.5)
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
