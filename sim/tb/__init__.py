"""cocotb test modules and test-bench helpers (test infrastructure, not product code)."""
