"""A lab's CA and node certificates: each node's certificate names its base
address (subjectAltName, the identity IKE checks) and is signed by the lab's
CA; a rogue CA's certificate is not; keys stay 0600."""
from __future__ import annotations

import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from testbed.keying import pki


def test_node_certificates_name_their_address_and_chain_to_the_lab_ca(tmp_path):
    found = pki.lab_credentials(tmp_path, {"A": "10.0.0.1", "B": "10.0.0.2"})
    ca = x509.load_der_x509_certificate((tmp_path / "lab-ca.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for node, address in (("A", "10.0.0.1"), ("B", "10.0.0.2")):
        cert = x509.load_der_x509_certificate(found[node].cert)
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(address)]
        assert stat.S_IMODE((tmp_path / f"{node}.key").stat().st_mode) == 0o600
    again = pki.lab_credentials(tmp_path, {"A": "10.0.0.1"})
    assert again["A"] == found["A"]                       # made once per lab


def test_a_rogue_ca_certificate_does_not_chain_to_the_lab_ca(tmp_path):
    pki.lab_credentials(tmp_path, {"A": "10.0.0.1"})
    rogue = pki.lab_credentials(tmp_path / "rogue", {"B": "10.0.0.2"}, ca_name="rogue")["B"]
    ca = x509.load_der_x509_certificate((tmp_path / "lab-ca.crt").read_bytes())
    with pytest.raises((InvalidSignature, ValueError)):
        x509.load_der_x509_certificate(rogue.cert).verify_directly_issued_by(ca)
