"""Signing promoted images offline, in cosign's key-based format (docs/operating.md, "Signing").

- payload.py: the "simple signing" JSON a signature covers (the image's repository and manifest digest);
- keys.py: ECDSA P-256 keys (PEM) and signatures (DER, base64), with the `cryptography` package;
- layout.py: where cosign keeps signatures in a registry (the `sha256-<hex>.sig` tag, one layer each);
- store.py: reading and appending those signatures through generator.release.distribution;
- config.py: which key a fleet signs with (the matrix's `signing:`, or the sandbox profile's machine key);
- check.py: every signature of one digest checked against the public key;
- step.py: sign / verify over cells, with retries and one record per cell (results/<profile>/sign/).
"""
