"""The TLS listener: a gateway node configured with a certificate (from a CA the test makes)
serves the same API over HTTPS, verified against that CA and refused without it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.render import GatewaySettings, tls_lines
from gateway.stack import Stack
from portcullis.procs import free_port
from tests.security.conftest import BASE, assert_sparkpost_error, auth
from tests.stackfix import Tenant


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path


def name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(folder: Path) -> Pki:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Portcullis test CA"))
          .issuer_name(name("Portcullis test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    pki.key.chmod(0o600)
    return pki


@dataclass
class TlsNode:
    pki: Pki
    tls_port: int
    plain_port: int
    conf: Path


@pytest.fixture(scope="module")
def tls_node(stack: Stack) -> Iterator[TlsNode]:
    pki = make_pki(stack.var / "tls-test")
    tls_port = free_port()
    proc, port, _ = stack.start_extra_gateway(
        "tls", stack.redis_url, tls_listen=f"127.0.0.1:{tls_port}", tls_cert=str(pki.cert),
        tls_key=str(pki.key))
    try:
        yield TlsNode(pki, tls_port, port, stack.var / "gateway-tls" / "nginx.conf")
    finally:
        proc.stop()


def test_the_tls_listener_serves_the_api_verified_against_the_test_ca(
        tls_node: TlsNode, tenant: Tenant) -> None:
    ctx = ssl.create_default_context(cafile=str(tls_node.pki.ca))
    for host in ("127.0.0.1", "localhost"):
        with httpx.Client(base_url=f"https://{host}:{tls_node.tls_port}", verify=ctx) as client:
            put = client.put(f"{BASE}/tls@example.com", json={"type": "transactional"},
                             headers=auth(tenant.key))
            assert put.status_code == 200, put.text
            got = client.get(f"{BASE}/tls@example.com", headers=auth(tenant.key))
            assert got.status_code == 200, got.text
            assert_sparkpost_error(client.get(BASE), 401)
    # The plain listener of the same node still answers.
    plain = httpx.get(f"http://127.0.0.1:{tls_node.plain_port}{BASE}/tls@example.com",
                      headers=auth(tenant.key))
    assert plain.status_code == 200, plain.text


def test_a_client_without_the_test_ca_refuses_the_certificate(tls_node: TlsNode) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{tls_node.tls_port}{BASE}", verify=True)


def test_the_certificate_served_is_the_configured_one_over_tls_1_2_and_1_3(
        tls_node: TlsNode) -> None:
    ctx = ssl.create_default_context(cafile=str(tls_node.pki.ca))
    with socket.create_connection(("127.0.0.1", tls_node.tls_port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    configured = x509.load_pem_x509_certificate(tls_node.pki.cert.read_bytes())
    assert served == configured
    # Both modern versions are spoken; older ones are not configured (the client library
    # here cannot even offer them, so the rendered configuration is what is checked).
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        only = ssl.create_default_context(cafile=str(tls_node.pki.ca))
        only.minimum_version = only.maximum_version = version
        with socket.create_connection(("127.0.0.1", tls_node.tls_port)) as raw, \
                only.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == version.name.replace("_", ".")
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in tls_node.conf.read_text()


def test_plain_http_on_the_tls_port_is_a_json_400(tls_node: TlsNode) -> None:
    resp = httpx.get(f"http://127.0.0.1:{tls_node.tls_port}{BASE}")
    assert_sparkpost_error(resp, 400)


TLS_SETTINGS = [
    ({}, ""),
    ({"tls_listen": "127.0.0.1:8443", "tls_cert": "/c.pem", "tls_key": "/k.pem"},
     "listen 127.0.0.1:8443 ssl"),
    ({"tls_listen": "127.0.0.1:8443"}, ValueError),
    ({"tls_cert": "/c.pem", "tls_key": "/k.pem"}, ValueError),
]


@pytest.mark.parametrize("case", TLS_SETTINGS, ids=["off", "on", "no cert", "no listen"])
def test_tls_renders_only_when_listen_cert_and_key_are_all_set(
        tmp_path: Path, case: tuple[dict[str, str], str | type[Exception]]) -> None:
    overrides, want = case
    settings = GatewaySettings(prefix=tmp_path, listen="127.0.0.1:1", metrics_listen="127.0.0.1:2",
                               control_url="http://127.0.0.1:3", authsvc_addr="127.0.0.1:4",
                               admin_token="t", signing_secret="s", **overrides)
    if isinstance(want, str):
        lines = tls_lines(settings)
        assert (want in lines) if want else lines == ""
        if want:
            assert "ssl_certificate /c.pem;" in lines and "ssl_certificate_key /k.pem;" in lines
    else:
        with pytest.raises(want):
            tls_lines(settings)
