"""Talking to a device: byte transports (serial, TCP, simulation) and the driver."""
