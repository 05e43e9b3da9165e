"""What TLS trusts and says: the CAs pip ≥ 24.2 trusts, the client certificate uv and pip can send, and a TLS
failure no retry mends told as such.

A certificate that does not verify, or a server's alert about the client's certificate, is the same on every
attempt: retried like a dropped connection it cost 13 s of back-off and then "run the same command again once
the server answers", which no server would ever do. ``tls_failure`` names the host and the settings to change.
"""

from __future__ import annotations

import os
import re
import ssl
import sys

import httpx

from wheelstream.errors import UsageError
from wheelstream.transport._proxies import proxy_settings

__all__ = ["ca_settings_in_use", "tls_failure", "tls_settings", "trust_context"]


# Where the CAs to trust come from besides the system's store and certifi's bundle: httpx's two settings, then
# the two pip honours through requests (a CA bundle set for pip was ignored here: "certificate verify failed"
# where pip installed).
CA_SETTINGS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
TLS_SETTINGS = (*CA_SETTINGS, "SSL_CLIENT_CERT")


def trust_context() -> ssl.SSLContext:
    """The CAs pip ≥ 24.2 trusts: the system's store, certifi's bundle, and each bundle or directory the
    settings in ``CA_SETTINGS`` name — added, never in place of the others, as pip adds its ``--cert`` and
    ``REQUESTS_CA_BUNDLE``. Loading a named file that is not there raises.

    The system's store is truststore's on macOS and Windows (the platform's verifier: the only way to the
    keychain and the certificate store). Elsewhere it is OpenSSL's default locations, or, where those hold
    nothing (a Python built with its own OpenSSL, as uv's and python.org's are), the distribution's bundle —
    what truststore does there too, but once per context rather than again for every connection (~19 ms
    each, under one lock)."""
    import certifi  # (here: httpx imports it only to build a context too)

    if sys.platform in ("darwin", "win32"):
        import truststore

        context: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        # OpenSSL's defaults, which SSL_CERT_FILE / SSL_CERT_DIR replace
        context = ssl.create_default_context()
        if not _openssl_defaults_hold_certificates():
            bundle = next((path for path in SYSTEM_BUNDLES if os.path.isfile(path)), None)
            if bundle is not None:
                context.load_verify_locations(cafile=bundle)
    context.load_verify_locations(certifi.where())
    for name in CA_SETTINGS:
        named = os.environ.get(name)
        if named:
            if os.path.isdir(named):
                context.load_verify_locations(capath=named)
            else:
                context.load_verify_locations(cafile=named)
    client_certificate = os.environ.get("SSL_CLIENT_CERT")
    if client_certificate:  # uv's setting, pip's --client-cert: one PEM file, the certificate and its key
        context.load_cert_chain(client_certificate, password=_no_password)
    return context


def _no_password() -> str:
    """OpenSSL would prompt on the terminal for an encrypted key's passphrase, in the middle of a download."""
    raise UsageError(
        "cannot use SSL_CLIENT_CERT: its private key is encrypted (give one without a passphrase)"
    )


# Where distributions keep the system's CA bundle (truststore's list, after certifi-system-store's).
SYSTEM_BUNDLES = [
    "/etc/ssl/cert.pem",  # Alpine, Arch, Fedora 34-43, RHEL 9-10, BSD
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # Fedora 44+, RHEL 11+
    "/etc/pki/tls/cert.pem",  # older Fedora, RHEL, CentOS
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu
    "/etc/ssl/ca-bundle.pem",  # SUSE
]


def _openssl_defaults_hold_certificates() -> bool:
    defaults = ssl.get_default_verify_paths()
    if defaults.cafile:
        return True
    if defaults.capath and os.path.isdir(defaults.capath):
        return any(re.fullmatch(r"[0-9a-fA-F]{8}\.[0-9]", name) for name in os.listdir(defaults.capath))
    return False


def ca_settings_in_use() -> str:
    """``SSL_CERT_FILE=…, REQUESTS_CA_BUNDLE=…``: the CA settings set here, for the messages that name them."""
    return _set_here(CA_SETTINGS)


def tls_settings() -> str:
    """`` (SSL_CERT_FILE=…, SSL_CLIENT_CERT=…)``: the settings a TLS context that cannot be built comes from."""
    named = _set_here(TLS_SETTINGS)
    return f" ({named})" if named else ""


def _set_here(names: tuple[str, ...]) -> str:
    return ", ".join(f"{name}={os.environ[name]}" for name in names if os.environ.get(name))


def tls_failure(exc: httpx.HTTPError) -> str | None:
    """What the user can change about a failure of TLS itself (a certificate, ours or the server's), or None
    for any other failure."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    try:
        url = exc.request.url
    except RuntimeError:  # no request attached
        host, proxy_host = "the server", ""
    else:
        host, proxy_host = url.host, _https_proxy_host(url)
    if proxy_host:  # either handshake may be the one that failed
        of = " of" if isinstance(cause, ssl.SSLCertVerificationError) else ""
        host += f" (or{of} the https proxy {proxy_host})"
    if isinstance(cause, ssl.SSLCertVerificationError):
        named = ca_settings_in_use()
        trusted = f"the system's, certifi's and those of {named}" if named else "the system's and certifi's"
        return (
            f"the TLS certificate of {host} does not verify ({cause.verify_message or cause}); the CAs "
            f"trusted are {trusted} (SSL_CERT_FILE or REQUESTS_CA_BUNDLE add others)"
        )
    if cause.reason not in _CLIENT_CERTIFICATE_ALERTS:
        return None
    given = os.environ.get("SSL_CLIENT_CERT")
    if given:
        return f"{host} refused the client certificate SSL_CLIENT_CERT={given} ({cause.reason})"
    return (
        f"{host} asks for a client certificate ({cause.reason}): set SSL_CLIENT_CERT to a PEM file holding the "
        "certificate and its key"
    )


def _https_proxy_host(url: httpx.URL) -> str:
    settings = proxy_settings()
    proxy = settings.proxy_for(url) if settings is not None else None
    return httpx.URL(proxy).host if proxy is not None and proxy.lower().startswith("https:") else ""


# The alerts a server sends about the client's certificate (RFC 8446 §6.2, in OpenSSL's names).
_CLIENT_CERTIFICATE_ALERTS = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)
