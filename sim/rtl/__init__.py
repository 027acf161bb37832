"""Running the gateware: the cocotb runner, the bus master beside its RAM model, UART host
helpers and the simulated board session (the driver talking to the RTL)."""
