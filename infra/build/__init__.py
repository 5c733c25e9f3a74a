"""The enclave image build's real files: the buildspec and the custom resource's Lambda handlers."""
