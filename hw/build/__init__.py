"""``python -m hw.build --board NAME``: bitstreams, Vivado plans and resource estimates."""
