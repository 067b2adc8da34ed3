"""Small sandbox matrices for the integration tests: one base (aws runtime), torch 2.13.0, a few stacks."""

from __future__ import annotations

HOST_CA = "/etc/ssl/certs/ca-certificates.crt"  # builds reach the package index through the host's proxy


def aws_runtime(repository: str, stacks: dict[str, str], extensions: dict[str, str], cas: tuple[str, ...] = ()) -> str:
    """The matrix text: `stacks` name -> its YAML list, `extensions` name -> its YAML mapping."""
    lines = [
        "schema: 1",
        'python: "3.11"',
        f"registry: {{host: 127.0.0.1:5000, repository: {repository}}}",
        "clouds: [aws]",
        "variants: [runtime]",
        "accelerators: [GPU_1xA10]",
        f"extra_ca_certificates: [{', '.join((HOST_CA, *cas))}]",
        "torch:",
        "  - {version: 2.13.0, torchvision: none, torchaudio: none}",
        "stacks:",
        *(f"  {name}: {value}" for name, value in stacks.items()),
        "extensions:",
        *(f"  {name}: {value}" for name, value in extensions.items()),
    ]
    return "\n".join(lines) + "\n"
