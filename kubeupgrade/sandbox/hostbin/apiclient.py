"""A small HTTP client for the simulated kubeadm to reach the sandbox API server.

The simulated binaries talk to the API with the credentials in the host's kubeconfig, as the
real ones do. Every simulated command is a new process, so this speaks HTTP/1.1 itself over one
kept-alive TLS connection per command, on `socket` and `ssl` alone: `urllib.request` and
`http.client` (with the `email` package behind them) were a fifth of a simulated `kubeadm upgrade
node`'s CPU, and each request paid a TLS handshake of its own.
"""

from __future__ import annotations

import base64
import socket
import ssl

from kubeupgrade.sandbox import quickjson

TYPE_CHECKING = False  # typing is not imported at run time; mypy reads this as usual
if TYPE_CHECKING:
    from typing import Any

_MAX_HEADER_LINES = 100


class ApiUnavailable(Exception):
    """The API server could not be reached; the message reads like Go's dial errors."""


REQUEST_TIMEOUT = "10s"  # kubeadm's client timeout, which client-go writes into each URL


class _Dial(Exception):
    """Connecting failed: at the TCP connect ("tcp") or in the TLS handshake ("tls")."""

    def __init__(self, stage: str, error: OSError) -> None:
        super().__init__(stage)
        self.stage, self.error = stage, error


def _dial_cause(failed: _Dial, authority: str) -> str:
    """What Go's net/http says of a connection that could not be made (the words kubeadm prints,
    and what operators and our agents recognise), not Python's exception text."""
    error = failed.error
    if failed.stage == "tls":
        if isinstance(error, TimeoutError):
            return "net/http: TLS handshake timeout"
        if isinstance(error, ssl.SSLCertVerificationError):
            return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        return "remote error: tls: handshake failure" if isinstance(error, ssl.SSLError) else "EOF"
    if isinstance(error, TimeoutError):
        return f"dial tcp {authority}: i/o timeout"
    if isinstance(error, socket.gaierror):
        return f"dial tcp: lookup {authority.rpartition(':')[0]}: no such host"
    if isinstance(error, ConnectionRefusedError):
        return f"dial tcp {authority}: connect: connection refused"
    reason = (error.strerror or "network is unreachable").lower()
    return f"dial tcp {authority}: connect: {reason}"


def _exchange_cause(error: Exception, authority: str, local: str) -> str:
    """What Go says of a request whose connection was made but whose answer did not come."""
    if isinstance(error, TimeoutError):
        return "net/http: request canceled (Client.Timeout exceeded while awaiting headers)"
    if isinstance(error, (ConnectionResetError, BrokenPipeError)):
        return f"read tcp {local}->{authority}: read: connection reset by peer"
    if isinstance(error, ValueError):
        return "net/http: HTTP/1.x transport connection broken: malformed HTTP response"
    return "EOF"


class ApiFailure(Exception):
    def __init__(self, code: int, status: dict[str, Any]) -> None:
        super().__init__(status.get("message", f"HTTP {code}"))
        self.code = code
        self.status = status


def load_yaml(text: str) -> Any:
    """yaml.safe_load, with libyaml's parser where PyYAML has it (ten times faster: the
    simulated kubeadm parses kubeconfigs and the ClusterConfiguration on every run)."""
    import yaml

    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:  # a ValueError to callers, who need not import YAML for it
        raise ValueError(f"yaml: {str(error).splitlines()[0]}") from None


# CA certificate -> a TLS context trusting it. In an agent farm, thousands of simulated commands
# reach the API server with each node's own kubeconfig but the same CA: a new context per
# command was a third of a simulated kubeadm's work there.
_contexts: dict[str, ssl.SSLContext] = {}


def _context(ca: str) -> ssl.SSLContext:
    context = _contexts.get(ca)
    if context is None:
        context = ssl.create_default_context(cadata=ca)
        if len(_contexts) >= 16:
            _contexts.clear()
        _contexts[ca] = context
    return context


class _Response:
    def __init__(self, code: int, body: bytes, keep_alive: bool) -> None:
        self.code, self.body, self.keep_alive = code, body, keep_alive


class KubeClient:
    def __init__(self, kubeconfig: str) -> None:
        """`kubeconfig`: the file's path."""
        with open(kubeconfig) as file:
            config = load_yaml(file.read())
        cluster = config["clusters"][0]["cluster"]
        self.server = cluster["server"].rstrip("/")
        self.token = config["users"][0]["user"]["token"]
        self.context = _context(base64.b64decode(cluster["certificate-authority-data"]).decode())
        scheme, _, authority = self.server.partition("://")
        if scheme != "https" or not authority:
            raise ValueError(f"{self.server!r}: the sandbox API server is reached over https")
        host, colon, port = authority.partition("/")[0].rpartition(":")
        self.host, self.port = (host, int(port)) if colon else (authority, 443)
        self.authority = authority
        self._socket: ssl.SSLSocket | None = None  # kept alive from the first request on
        self._file: Any = None  # the connection read and written as a buffered file
        self._local = "127.0.0.1:0"  # this end of the last connection, for Go-worded errors

    def close(self) -> None:
        if self._socket is not None:
            self._file.close()
            self._socket.close()
            self._socket = self._file = None

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json", timeout: float = 10.0) -> Any:
        data = quickjson.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.authority}\r\n"
                f"Authorization: Bearer {self.token}\r\nContent-Type: {content_type}\r\n"
                f"Accept: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
        try:
            response = self._exchange(head + data, timeout)
        except _Dial as failed:
            self.close()
            raise ApiUnavailable(self._url_error(method, path, _dial_cause(failed, self.authority))) from None
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
            self.close()
            raise ApiUnavailable(self._url_error(method, path, _exchange_cause(error, self.authority, self._local))) from None
        if not response.keep_alive:
            self.close()
        if response.code >= 400:
            try:
                status = quickjson.loads(response.body.decode())
            except ValueError:
                status = None
            if not isinstance(status, dict):
                status = {"message": f"HTTP Error {response.code}"}
            raise ApiFailure(response.code, status)
        return quickjson.loads(response.body.decode() or "null")

    def _exchange(self, message: bytes, timeout: float) -> _Response:
        if self._socket is not None:
            try:
                return self._send_and_read(message, timeout)
            except (ConnectionError, EOFError):
                # The kept-alive connection was closed (the server restarted) and nothing of an
                # answer came back: sent once more on a new connection, as Go's client does for a
                # request on an idle connection. Every request here is a GET, or a PUT/PATCH of
                # the same content, which the API server answers with a conflict if it did serve it.
                self.close()
        self._connect(timeout)
        try:
            return self._send_and_read(message, timeout)
        except EOFError:
            raise ConnectionResetError("the server closed the connection without an answer") from None

    def _url_error(self, method: str, path: str, cause: str) -> str:
        # As Go's url.Error prints it; client-go adds the client's timeout to every request's URL.
        url = f"{self.server}{path}{'&' if '?' in path else '?'}timeout={REQUEST_TIMEOUT}"
        return f'{method.title()} "{url}": {cause}'

    def _connect(self, timeout: float) -> None:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as error:
            raise _Dial("tcp", error) from None
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            host, port = raw.getsockname()[:2]
            self._local = f"{host}:{port}"
            secure = self.context.wrap_socket(raw, server_hostname=self.host)
        except OSError as error:
            raw.close()
            raise _Dial("tls", error) from None
        except BaseException:
            raw.close()
            raise
        self._socket, self._file = secure, secure.makefile("rwb")

    def _send_and_read(self, message: bytes, timeout: float) -> _Response:
        if self._socket is None:
            raise ConnectionError("not connected")
        self._socket.settimeout(timeout)
        file = self._file
        file.write(message)
        file.flush()
        status = file.readline(65537)
        if not status:
            raise EOFError
        version, _, rest = status.decode("latin-1").partition(" ")
        code_text = rest[:3]
        if not version.startswith("HTTP/1.") or not code_text.isdigit():
            raise ValueError(f"not an HTTP response: {status[:80]!r}")
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADER_LINES):
            line = file.readline(65537).decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ValueError("too many header lines in the answer")
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked(file)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body = file.read(length)
            if len(body) != length:
                raise ConnectionResetError("the answer ended before its Content-Length")
        else:
            body, keep_alive = file.read(), False  # the answer runs to the connection's end
        return _Response(int(code_text), body, keep_alive)

    @staticmethod
    def _read_chunked(file: Any) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(file.readline(1026).split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while file.readline(65537).strip():  # trailers
                    pass
                return b"".join(parts)
            chunk = file.read(size)
            if len(chunk) != size:
                raise ConnectionResetError("the answer ended inside a chunk")
            parts.append(chunk)
            file.readline(3)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, "application/strategic-merge-patch+json")
