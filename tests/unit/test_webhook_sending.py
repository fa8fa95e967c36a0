"""One webhook attempt against receivers on loopback, with a stub resolver: it goes to
the address that was checked (not to a second lookup's answer), keeps the URL's host
for Host, TLS server name and certificate, and ends by one deadline however slowly
the receiver answers. No PostgreSQL or Redis: `attempt` sends and reports, the
worker's `deliver` records."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from booking import webhooks
from models import WebhookDelivery
from tests.integration.test_webhooks import Receiver
from workers.deliver import attempt

PUBLIC = "93.184.216.34"  # a public address; the tests never let a connection to it out
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def a_delivery(url: str) -> WebhookDelivery:
    return WebhookDelivery(id=uuid.uuid4(), request_id=uuid.uuid4(), message_id="msg_test",
                           url=url, payload='{"type":"test"}')


def answer(address: str, port: int) -> list[tuple]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]


@pytest.fixture
def resolver(monkeypatch):
    """Scripted answers per host name (one list per lookup, the last repeats); every
    other name, numeric addresses included, goes to the real resolver."""
    real = socket.getaddrinfo
    script: dict[str, list[list[str]]] = {}
    lookups: dict[str, int] = {}

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host not in script:
            return real(host, port, family, type, proto, flags)
        answers = script[host]
        lookups[host] = lookups.get(host, 0) + 1
        return [a for address in answers[min(lookups[host], len(answers)) - 1] for a in answer(address, port)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return script


@pytest.fixture
def connections(monkeypatch):
    """Every address a socket connects to. The public test address is refused here, so
    nothing leaves the machine; loopback connections go through."""
    real = socket.socket.connect
    made: list[str] = []

    def connect(sock, address):
        made.append(address[0])
        if address[0] == PUBLIC:
            raise ConnectionRefusedError("the test does not let this out")
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return made


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def public_only(monkeypatch, setting_env):
    setting_env("BOOKING_WEBHOOK_ALLOW_PRIVATE")


def test_a_name_that_rebinds_to_loopback_after_the_check_is_never_connected_to(
        public_only, resolver, connections, receiver):
    port = receiver.server.server_port
    resolver["rebind.test"] = [[PUBLIC], ["127.0.0.1"]]  # public when checked, loopback after

    outcome = attempt(a_delivery(f"http://rebind.test:{port}/hooks"), [SECRET])

    assert outcome.status_code is None and "ConnectError" in outcome.error
    assert connections == [PUBLIC]
    assert receiver.requests == []


def test_a_name_with_any_private_address_is_refused_whole(public_only, resolver, connections, receiver):
    port = receiver.server.server_port
    resolver["mixed.test"] = [[PUBLIC, "127.0.0.1"]]

    outcome = attempt(a_delivery(f"http://mixed.test:{port}/hooks"), [SECRET])

    assert outcome.error.startswith("refused: ") and "private" in outcome.error
    assert connections == [] and receiver.requests == []


# --- TLS: connected by address, verified by name ---------------------------------

def a_certificate(name: str, issuer_key=None, issuer: x509.Name | None = None):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1)))
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def pem(key, certificate) -> tuple[bytes, bytes]:
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            certificate.public_bytes(serialization.Encoding.PEM))


class TlsReceiver:
    """An HTTPS receiver on 127.0.0.1 with a certificate for `name` from a test CA;
    records the TLS server name and the Host header each request arrives with."""

    def __init__(self, name: str, tmp_path):
        ca_key, ca = a_certificate("Test CA")
        key, leaf = a_certificate(name, ca_key, ca.subject)
        key_pem, leaf_pem = pem(key, leaf)
        (tmp_path / "leaf.pem").write_bytes(leaf_pem + key_pem)
        self.client_context = ssl.create_default_context(cadata=pem(ca_key, ca)[1].decode())
        self.server_names: list[str | None] = []
        self.hosts: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tmp_path / "leaf.pem")
        context.sni_callback = lambda _sock, server_name, _context: self.server_names.append(server_name)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_port

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.hosts.append(self.headers["Host"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def tls_receiver(tmp_path):
    receiver = TlsReceiver("hooks.test", tmp_path)
    yield receiver
    receiver.server.shutdown()


def test_https_goes_to_the_checked_address_under_the_urls_host_name(resolver, tls_receiver):
    resolver["hooks.test"] = [["127.0.0.1"]]

    response = webhooks.post(f"https://hooks.test:{tls_receiver.port}/hooks", "{}", {}, 5,
                             allow_private=True, ssl_context=tls_receiver.client_context)

    assert response.status_code == 204
    assert tls_receiver.server_names == ["hooks.test"]
    assert tls_receiver.hosts == [f"hooks.test:{tls_receiver.port}"]


def test_https_refuses_a_certificate_for_another_name(resolver, tls_receiver):
    resolver["other.test"] = [["127.0.0.1"]]

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        webhooks.post(f"https://other.test:{tls_receiver.port}/hooks", "{}", {}, 5,
                      allow_private=True, ssl_context=tls_receiver.client_context)
    assert tls_receiver.hosts == []


# --- one deadline for the whole attempt --------------------------------------------

class Trickler:
    """A receiver that reads the request, then sends one byte of a header line every
    0.2 s until told to stop: each read is quick, the answer never ends."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stop = threading.Event()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hooks"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
            while not self.stop.wait(0.2):
                connection.sendall(b"a")


@pytest.fixture
def trickler():
    trickler = Trickler()
    yield trickler
    trickler.stop.set()
    trickler.listener.close()


def test_a_trickling_receiver_is_cut_off_at_the_attempts_deadline(monkeypatch, trickler, setting_env):
    setting_env("BOOKING_WEBHOOK_ALLOW_PRIVATE", "1")
    setting_env("BOOKING_WEBHOOK_TIMEOUT", "1")
    outcomes = []
    began = time.monotonic()
    sender = threading.Thread(target=lambda: outcomes.append(attempt(a_delivery(trickler.url), [SECRET])),
                              daemon=True)

    sender.start()
    sender.join(timeout=4)  # bounded: without a total deadline the attempt never ends

    assert outcomes, "the attempt outlived its deadline"
    elapsed = time.monotonic() - began
    assert 1 <= elapsed < 1.75
    assert "ReadTimeout" in outcomes[0].error and outcomes[0].status_code is None
