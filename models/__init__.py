"""Analytics that learn or judge: per-pool signals, anomaly detectors, and the alert lifecycle."""
