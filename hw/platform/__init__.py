"""Board tops: clock generation and pin wiring around the accelerator."""
