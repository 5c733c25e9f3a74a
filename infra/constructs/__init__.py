"""One construct per concern of the nitro-enclave-demo stack; the stack only wires them together."""
