"""snakepit-perf: performance monitoring for Snakepit deployments (composition root: CLI, config)."""

__version__ = "0.1.0"
