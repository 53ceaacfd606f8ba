//! Wires the pipeline from a validated config, supervises its tasks and shuts it down.
