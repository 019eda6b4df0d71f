"""A local Cloud Storage for tests: the ``gcp-storage-emulator`` server on a free loopback port,
and credentials that never leave the machine.

Beam's GCS client asks google-auth for default credentials and, finding none, retries four times
with backoff (about 20 s per process) before connecting anonymously; google-auth also probes the
GCE metadata server. So the environment given here holds a throwaway service-account file whose
token endpoint is a tiny local HTTP server (a refresh takes a millisecond), and
``NO_GCE_CHECK=true``. ``STORAGE_EMULATOR_HOST`` points both Beam and google-cloud-storage
(``schemas.storage``) at the emulator. ``with emulator.environment():`` sets ``GcsEmulator.env``
in ``os.environ`` (the code under test and its subprocesses see it) and restores it after, so
tests that expect no emulator (Dataflow dry runs on made-up buckets) are not redirected to it.

The emulator runs as a subprocess we start and stop by its recorded process id.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BUCKET = "winnow-test"
PROJECT = "winnow-test-project"
_START_TIMEOUT_S = 30


def emulator_missing() -> str | None:
    """Why the emulator cannot run here (a package to install), or None."""
    for module, package in (("gcp_storage_emulator", "gcp-storage-emulator"),
                            ("google.cloud.storage", "google-cloud-storage")):
        try:
            __import__(module)
        except ImportError:
            return f"needs {package} (pip install -e '.[test]')"
    return None


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    """Answers every POST (google-auth's JWT-bearer token request) with a fake access token."""

    def do_POST(self):  # noqa: N802 - BaseHTTPRequestHandler's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"access_token": "fake-token", "token_type": "Bearer",
                           "expires_in": 3600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet: one line per token request is noise in test output
        pass


def _service_account_file(folder: Path, token_uri: str) -> Path:
    """A service-account key file (a fresh RSA key: google-auth signs its token request with it)
    whose token endpoint is ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = folder / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "fake",
        "private_key": pem, "client_email": f"tests@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "0", "token_uri": token_uri,
    }))
    return path


@dataclass
class GcsEmulator:
    """A running emulator with bucket ``BUCKET``; ``env`` points clients at it."""

    host: str  # "http://127.0.0.1:PORT"
    pid: int
    env: dict[str, str] = field(default_factory=dict)

    @contextlib.contextmanager
    def environment(self):
        """``os.environ`` pointing at this emulator inside the block, as it was after."""
        before = {name: os.environ.get(name) for name in self.env}
        os.environ.update(self.env)
        try:
            yield self
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def url(self, *keys: str) -> str:
        """``gs://BUCKET/key/...``."""
        return "/".join([f"gs://{BUCKET}", *keys])

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.host})

    def upload(self, local: Path, prefix: str) -> str:
        """Copies the file or folder ``local`` to ``gs://BUCKET/prefix``; returns that URL."""
        bucket = self.client().bucket(BUCKET)
        local = Path(local)
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        for path in files:
            key = prefix if path == local else f"{prefix}/{path.relative_to(local).as_posix()}"
            bucket.blob(key).upload_from_filename(str(path))
        return self.url(prefix)

    def download(self, prefix: str, local: Path) -> Path:
        """Copies every object under ``gs://BUCKET/prefix/`` into the folder ``local``."""
        for blob in self.client().list_blobs(BUCKET, prefix=prefix.rstrip("/") + "/"):
            target = Path(local) / blob.name[len(prefix.rstrip("/")) + 1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
        return Path(local)

    def keys(self, prefix: str) -> list[str]:
        """The object names under ``prefix/``, relative to it, sorted."""
        start = prefix.rstrip("/") + "/"
        return sorted(b.name[len(start):] for b in self.client().list_blobs(BUCKET, prefix=start))


def start_emulator(folder: Path) -> tuple[GcsEmulator, http.server.HTTPServer]:
    """Starts the emulator (in memory) and the token server; ``stop_emulator`` ends both."""
    port = free_loopback_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory", "--default-bucket", BUCKET, "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"http://127.0.0.1:{port}"
    tokens = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    token_uri = f"http://127.0.0.1:{tokens.server_address[1]}/token"
    emulator = GcsEmulator(host=host, pid=process.pid, env={
        "STORAGE_EMULATOR_HOST": host,
        "GOOGLE_APPLICATION_CREDENTIALS": str(_service_account_file(folder, token_uri)),
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "NO_GCE_CHECK": "true",  # google-auth: never probe the metadata server
        # A proxy configured for the machine (CI) must not carry loopback requests.
        "NO_PROXY": _with_loopback(os.environ.get("NO_PROXY")),
        "no_proxy": _with_loopback(os.environ.get("no_proxy")),
    })
    try:
        _wait_until_serving(host, process)
    except BaseException:
        stop_emulator(emulator, tokens)
        raise
    return emulator, tokens


def _with_loopback(no_proxy: str | None) -> str:
    return ",".join(filter(None, [no_proxy, "127.0.0.1", "localhost"]))


def _wait_until_serving(host: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        try:
            with direct.open(f"{host}/storage/v1/b/{BUCKET}", timeout=1):
                return
        except OSError as error:
            if process.poll() is not None:
                raise RuntimeError(f"the storage emulator exited ({process.returncode})") from error
            if time.monotonic() > deadline:
                raise RuntimeError(f"the storage emulator did not answer on {host} within "
                                   f"{_START_TIMEOUT_S} s") from error
            time.sleep(0.1)


def stop_emulator(emulator: GcsEmulator, tokens: http.server.HTTPServer) -> None:
    """SIGTERM to the emulator's recorded process id (SIGKILL if it lingers), then the token
    server."""
    tokens.shutdown()
    tokens.server_close()
    try:
        os.kill(emulator.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.waitpid(emulator.pid, os.WNOHANG) != (0, 0):
                return
            time.sleep(0.05)
        os.kill(emulator.pid, signal.SIGKILL)
        os.waitpid(emulator.pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass  # already gone
