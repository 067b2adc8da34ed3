"""The sandbox: the whole pipeline on one machine, for real.

A local Docker engine and OCI registry (services.py, the façade over dockerd.py, registry.py, apt.py,
processes.py, layout.py and report.py), stand-ins for the proprietary base images (bases.py) built from
a Debian rootfs (rootfs.py, from the host's mirror: mirror.py), the failures of both as one line
(errors.py), and the `sandbox` profile (generator/profiles/sandbox.yaml).
"""
