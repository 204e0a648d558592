"""A private CA and certificates made with the openssl command line, for test registries."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class CertificateAuthority:
    directory: Path

    @property
    def cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def key(self) -> Path:
        return self.directory / "ca.key"

    @classmethod
    def create(cls, directory: Path, name: str = "vmdiskimage test CA") -> CertificateAuthority:
        """Create (or reuse) a CA in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        ca = cls(directory)
        if not ca.cert.exists():
            _openssl(
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN={name}", "-keyout", ca.key, "-out", ca.cert,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=directory,
            )  # fmt: skip
        return ca

    def issue(self, name: str, hosts: list[str]) -> tuple[Path, Path]:
        """A server certificate for ``hosts`` (IPs or DNS names); returns (cert, key)."""
        cert, key, csr = (self.directory / f"{name}.{ext}" for ext in ("crt", "key", "csr"))
        if cert.exists():
            return cert, key
        sans = ",".join(
            f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts
        )
        ext = self.directory / f"{name}.ext"
        ext.write_text(
            f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
        )
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hosts[0]}",
            "-keyout", key, "-out", csr, cwd=self.directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert,
            cwd=self.directory,
        )  # fmt: skip
        return cert, key


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate and key (the token signer); returns (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    if not cert.exists():
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", key, "-out", cert, cwd=directory,
        )  # fmt: skip
    return cert, key
