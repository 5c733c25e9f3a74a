"""The EnclaveImageBuild custom resource's Lambda code (this directory is the Lambda asset)."""
