"""The agent id and partition this process pushes as: from the client certificate's CN, or from the flags.

ServiceRadar's gateway accepts an agent whose certificate CN is
``<agent_id>.<partition>.serviceradar`` (what edge onboarding issues, with a
``spiffe://serviceradar.local/agent/...`` URI SAN) and checks every request's
``agent_id`` against it, so the id is taken from there and a flag that
disagrees stops start-up instead of being refused by the gateway forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config.flags import ConfigError
from exporter.config.serviceradar import AGENT_ID_OPTION, CERT_DIR_OPTION, PARTITION_OPTION, ServiceRadarConfig

CN_SUFFIX = "serviceradar"


@dataclass(frozen=True)
class Identity:
    agent_id: str
    partition: str


def parse_cn(cn: str, where: str) -> Identity:
    """``<agent_id>.<partition>.serviceradar`` -> Identity; ConfigError naming --serviceradar.cert-dir otherwise."""
    parts = cn.split(".")
    if len(parts) < 3 or parts[-1] != CN_SUFFIX or not all(parts):
        raise ConfigError(
            CERT_DIR_OPTION,
            f"{where}: CN {cn!r} is not <agent_id>.<partition>.serviceradar, which the gateway requires",
        )
    if len(parts) > 3:
        raise ConfigError(
            CERT_DIR_OPTION,
            f"{where}: CN {cn!r} has more than three parts: an agent id or partition with a '.' "
            "can never match the gateway's check; issue the certificate for an id without '.'",
        )
    return Identity(parts[0], parts[1])


def certificate_cn(pem: bytes, where: str) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise ConfigError(CERT_DIR_OPTION, f"{where}: not a PEM certificate: {e}") from None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ConfigError(CERT_DIR_OPTION, f"{where}: the certificate has no CN")
    value = names[0].value
    return value.decode() if isinstance(value, bytes) else value


def resolve_identity(config: ServiceRadarConfig) -> Identity:
    if config.tls is None:
        return Identity(config.agent_id, config.partition)
    where = str(config.tls.cert_file)
    try:
        pem = config.tls.cert_file.read_bytes()
    except OSError as e:
        raise ConfigError(CERT_DIR_OPTION, f"{where}: {e.strerror}") from None
    from_cn = parse_cn(certificate_cn(pem, where), where)
    for option, given, expected in (
        (AGENT_ID_OPTION, config.agent_id, from_cn.agent_id),
        (PARTITION_OPTION, config.partition, from_cn.partition),
    ):
        if given and given != expected:
            raise ConfigError(
                option, f"{given!r} differs from {expected!r} in the CN of {where}; the gateway would refuse it"
            )
    return from_cn
