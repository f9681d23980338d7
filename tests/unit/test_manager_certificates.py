"""The manager's side of automatic certificates without a CA: the renewal policy, the files it
keeps (temporary certificate, challenge certificate, modes), and how a running order's challenge
reaches the front and waits for its acknowledgement (wasp/manager/acme.py, certificates.py)."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time

from cryptography import x509

from wasp.config.acme import certificate_paths
from wasp.config.model import AcmeSettings, Config, Duration, ServerSettings, Site, SiteBinding
from wasp.manager import acme
from wasp.manager.certificates import Certificates, due_at, retry_delay

DAY = 86400.0


def info(not_before=0.0, not_after=90 * DAY, temporary=False, covers=True) -> acme.CertInfo:
    return acme.CertInfo(not_before, not_after, 1, temporary, covers)


def test_renewal_when_a_third_of_the_lifetime_is_left_or_renew_before():
    settings = AcmeSettings()
    assert due_at(info(), settings, now=1.0) == 60 * DAY
    assert due_at(info(), AcmeSettings(renew_before=Duration(10 * DAY)), now=1.0) == 80 * DAY


def test_nothing_issued_yet_is_due_at_once():
    settings = AcmeSettings()
    for filed in (None, info(temporary=True), info(covers=False), info(not_after=5.0)):
        assert due_at(filed, settings, now=10.0) == 10.0


def test_retries_double_up_to_a_day():
    settings = AcmeSettings(retry_interval=Duration(60))
    assert [retry_delay(settings, n) for n in (1, 2, 3)] == [60, 120, 240]
    assert retry_delay(settings, 40) == DAY


def test_temporary_certificate_is_self_signed_for_the_host_in_private_files(tmp_path):
    run_dir = str(tmp_path / "run")
    os.mkdir(run_dir, 0o700)
    assert acme.ensure_temporary(run_dir, "www.example.test")
    cert_path, key_path = certificate_paths(run_dir, "www.example.test")
    filed = acme.current(run_dir, "www.example.test")
    assert filed.temporary and filed.covers
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(key_path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(run_dir, "acme")).st_mode) == 0o700
    # A usable one is kept (a restart does not replace what serves).
    assert not acme.ensure_temporary(run_dir, "www.example.test")
    assert acme.current(run_dir, "www.example.test").serial == filed.serial
    # The files of another host are not it.
    assert acme.current(run_dir, "api.example.test") is None


def test_a_symlinked_acme_folder_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    (tmp_path / "elsewhere").mkdir()
    (run_dir / "acme").symlink_to(tmp_path / "elsewhere")
    try:
        acme.ensure_temporary(str(run_dir), "www.example.test")
    except OSError as exc:
        assert "not a folder of ours" in str(exc)
    else:
        raise AssertionError("wrote through a symlink")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_tls_alpn01_certificate_has_the_critical_acme_identifier(tmp_path):
    run_dir = str(tmp_path)
    cert_path, key_path = acme.write_challenge_certificate(run_dir, "www.example.test", "tok.thumb")
    cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    extension = cert.extensions.get_extension_for_oid(acme.ACME_IDENTIFIER_OID)
    assert extension.critical
    assert extension.value.value == b"\x04\x20" + hashlib.sha256(b"tok.thumb").digest()
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.DNSName) == ["www.example.test"]
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600


def config(run_dir: str) -> Config:
    binding = SiteBinding(binding="https/*:443:www.example.test", certificate="acme", ssl_flags=["sni"])
    return Config(server=ServerSettings(run_dir=run_dir), sites=[Site(name="s", id=1, bindings=[binding])],
                  acme=AcmeSettings(agree_tos=True))


class Rig:
    def __init__(self):
        self.posted: list[tuple] = []
        self.front: list[dict] = []
        self.events: list[tuple[int, dict]] = []
        self.certs = Certificates(self.posted.append, self.front.append,
                                  lambda event_id, data: self.events.append((event_id, data)), lambda line: None)


def test_apply_files_a_temporary_certificate_and_schedules_it_at_once(tmp_path):
    rig = Rig()
    rig.certs.apply(config(str(tmp_path)))
    assert acme.current(str(tmp_path), "www.example.test").temporary
    assert rig.certs.next_deadline(100.0, time.time()) == 100.0   # due now: the deadline is now


def test_a_challenge_goes_to_the_front_and_the_order_waits_for_its_ack(tmp_path):
    rig = Rig()
    rig.certs.apply(config(str(tmp_path)))
    event = threading.Event()
    rig.certs.handle(("acme", "challenge", "www.example.test", {"http01": {"tok": ["www.example.test", "ka"]}}, event))
    [message] = rig.front
    assert message["op"] == "acme" and message["http01"] == {"tok": ["www.example.test", "ka"]}
    assert message["tls_alpn01"] == {}
    assert not event.is_set()
    rig.certs.acked(message["id"] - 1)       # an older message's ack is not this one's
    assert not event.is_set()
    rig.certs.acked(message["id"])
    assert event.is_set()
    # A new front gets the challenges still pending.
    assert rig.certs.front_message()["http01"] == {"tok": ["www.example.test", "ka"]}


def test_a_failed_order_backs_off_and_says_so(tmp_path):
    rig = Rig()
    rig.certs.apply(config(str(tmp_path)))
    rig.certs.running = "www.example.test"
    rig.certs.handle(("acme", "done", "www.example.test", "connection refused"))
    [(event_id, data)] = rig.events
    assert event_id == 9062 and data["error"] == "connection refused" and data["retry_s"] == 60
    assert rig.certs.running is None
    deadline = rig.certs.next_deadline(0.0, time.time())
    assert deadline is not None and 0 < deadline <= 60   # a minute after the failure
    rig.certs.running = "www.example.test"
    rig.certs.handle(("acme", "done", "www.example.test", "again"))
    assert rig.events[-1][1]["retry_s"] == 120
