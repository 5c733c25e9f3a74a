"""SoftwareNsm builds documents shaped like the real NSM's; LocalPki persists; measurements are stable."""

from __future__ import annotations

import base64
import socket
import ssl
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import pytest
from cryptography import x509

from app.enclave.nsm import SecureModule
from app.local.software_nsm import (
    TLS_CA_FILE,
    LocalPki,
    SoftwareNsm,
    measure_enclave_sources,
    software_measurement,
)
from app.shared.attestation import parse_document, verify_document
from tests.attestation_helpers import local_pki

REAL = base64.b64decode((Path(__file__).parent.parent / "fixtures" / "real_attestation.b64").read_text())
PCR0 = bytes(range(48))
FIXED = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def nsm(pki: LocalPki | None = None) -> SecureModule:
    return SoftwareNsm(pki or local_pki(), {0: PCR0})


def test_document_verifies_against_the_pki_root() -> None:
    document = nsm().attest(public_key=b"pk", user_data=b"ud", nonce=b"n")
    parsed = verify_document(
        document, root_certificate_der=local_pki().root_certificate_der, max_age_s=5, expected_nonce=b"n"
    )
    assert (parsed.public_key, parsed.user_data, parsed.module_id) == (b"pk", b"ud", "local-software-nsm")


def test_document_has_the_real_envelope_shape() -> None:
    ours, real = cbor2.loads(nsm().attest()), cbor2.loads(REAL)
    assert isinstance(ours, list)
    assert (ours[0], ours[1], len(ours[3])) == (real[0], real[1], len(real[3]))


def test_payload_keys_are_in_the_real_order() -> None:
    ours = cbor2.loads(cbor2.loads(nsm().attest())[2])
    real = cbor2.loads(cbor2.loads(REAL)[2])
    assert list(ours) == list(real)


def test_cabundle_is_root_first() -> None:
    document = parse_document(nsm().attest())
    assert document.cabundle[0] == local_pki().root_certificate_der
    assert len(document.cabundle) == 2


def test_timestamp_is_milliseconds_from_the_clock() -> None:
    fixed = SoftwareNsm(local_pki(), {0: PCR0}, clock=lambda: FIXED)
    assert cbor2.loads(cbor2.loads(fixed.attest())[2])["timestamp"] == 1767323045678
    assert parse_document(fixed.attest()).timestamp == FIXED


def test_sixteen_pcrs_with_unset_ones_zero() -> None:
    document = parse_document(SoftwareNsm(local_pki(), {0: PCR0, 8: b"\x08" * 48}).attest())
    assert sorted(document.pcrs) == list(range(16))
    assert (document.pcrs[0], document.pcrs[8], document.pcrs[1]) == (PCR0, b"\x08" * 48, bytes(48))


def test_all_zero_pcrs_look_like_debug_mode() -> None:
    assert parse_document(SoftwareNsm(local_pki(), {}).attest()).debug_mode


@pytest.mark.parametrize("pcrs", [{0: b"short"}, {16: PCR0}, {-1: PCR0}])
def test_invalid_pcrs_are_refused(pcrs: dict[int, bytes]) -> None:
    with pytest.raises(ValueError, match="PCR"):
        SoftwareNsm(local_pki(), pcrs)


def test_saved_pki_loads_and_still_verifies(tmp_path: Path) -> None:
    original = local_pki()
    original.save(tmp_path)
    document = nsm(LocalPki.load(tmp_path)).attest()
    assert verify_document(document, root_certificate_der=original.root_certificate_der)


def test_saved_private_keys_are_owner_only(tmp_path: Path) -> None:
    local_pki().save(tmp_path)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.glob("*.key")}
    assert modes
    assert set(modes.values()) == {0o600}


def test_saved_tls_ca_is_the_pki_tls_ca(tmp_path: Path) -> None:
    local_pki().save(tmp_path)
    assert (tmp_path / TLS_CA_FILE).read_bytes() == local_pki().tls_ca_pem


def test_tls_certificate_names_hosts_and_ips() -> None:
    cert_pem, _ = local_pki().tls_certificate_for("localhost", "127.0.0.1")
    names = x509.load_pem_x509_certificate(cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert names.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_tls_certificate_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least one"):
        local_pki().tls_certificate_for()


def test_tls_handshake_succeeds_for_a_client_trusting_the_tls_ca(tmp_path: Path) -> None:
    cert_pem, key_pem = local_pki().tls_certificate_for("localhost")
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    client_context = ssl.create_default_context(cadata=local_pki().tls_ca_pem.decode())
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept_one() -> None:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=accept_one)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join(timeout=5)


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)


def test_measurement_is_sha384_sized_and_order_independent(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.py": b"a", "b/c.py": b"c"})
    first = software_measurement([tmp_path / "a.py", tmp_path / "b/c.py"], root=tmp_path)
    second = software_measurement([tmp_path / "b/c.py", tmp_path / "a.py"], root=tmp_path)
    assert len(first) == 48
    assert first == second


def test_measurement_changes_with_content(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.py": b"a"})
    before = software_measurement([tmp_path / "a.py"], root=tmp_path)
    write_tree(tmp_path, {"a.py": b"b"})
    assert software_measurement([tmp_path / "a.py"], root=tmp_path) != before


def test_measurement_changes_with_a_rename(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.py": b"x", "b.py": b"x"})
    assert software_measurement([tmp_path / "a.py"], root=tmp_path) != software_measurement(
        [tmp_path / "b.py"], root=tmp_path
    )


def test_measurement_refuses_duplicates(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.py": b"a"})
    with pytest.raises(ValueError, match="twice"):
        software_measurement([tmp_path / "a.py", tmp_path / "a.py"], root=tmp_path)


def enclave_tree(root: Path) -> None:
    write_tree(
        root,
        {
            "app/enclave/server.py": b"s",
            "app/shared/protocol.py": b"p",
            "app/enclave/Dockerfile": b"FROM x",
            "app/enclave/requirements.txt": b"cbor2==6.3.0",
        },
    )


def test_enclave_measurement_covers_the_dockerfile(tmp_path: Path) -> None:
    enclave_tree(tmp_path)
    before = measure_enclave_sources(tmp_path)
    write_tree(tmp_path, {"app/enclave/Dockerfile": b"FROM y"})
    assert measure_enclave_sources(tmp_path) != before


def test_enclave_measurement_covers_shared_python(tmp_path: Path) -> None:
    enclave_tree(tmp_path)
    before = measure_enclave_sources(tmp_path)
    write_tree(tmp_path, {"app/shared/new.py": b"n"})
    assert measure_enclave_sources(tmp_path) != before


def test_enclave_measurement_ignores_other_programs(tmp_path: Path) -> None:
    enclave_tree(tmp_path)
    before = measure_enclave_sources(tmp_path)
    write_tree(tmp_path, {"app/parent/relay.py": b"r", "app/shared/__pycache__/x.cpython-311.pyc": b"c"})
    assert measure_enclave_sources(tmp_path) == before


def test_enclave_measurement_covers_every_file_the_image_copies(tmp_path: Path) -> None:
    enclave_tree(tmp_path)
    before = measure_enclave_sources(tmp_path)
    write_tree(tmp_path, {"app/shared/root.pem": b"pem"})
    assert measure_enclave_sources(tmp_path) != before


def test_enclave_measurement_of_this_repository_is_stable() -> None:
    root = Path(__file__).parents[2]
    assert measure_enclave_sources(root) == measure_enclave_sources(root)
