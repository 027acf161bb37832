"""The SpikePack core gateware: PE array, fetcher, issuer, firing units, writer, sequencer."""
