"""The sandbox: the whole pipeline on one machine, for real.

A local Docker engine and OCI registry (services.py, the façade over dockerd.py, registry.py, apt.py,
processes.py, layout.py and report.py), stand-ins for the proprietary base images built from a Debian
rootfs (bases.py), and the `sandbox` profile (generator/profiles/sandbox.yaml).
"""
