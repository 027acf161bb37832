"""The host-link gateware: UART, frame decoder/encoder and the command executor."""
