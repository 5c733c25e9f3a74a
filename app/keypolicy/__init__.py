"""The KMS key policy as data, and the offline evaluator that enforces it in local mode.

Imported by infra (the CDK construct renders the same document) and by local mode and the parent's
`attest`; never by the enclave image (it lives outside app/enclave and app/shared, so it does not change
the enclave's measurement).
"""
