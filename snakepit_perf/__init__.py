"""snakepit-perf: performance monitoring for Snakepit deployments (composition root: CLI, config)."""

from importlib.metadata import version

__version__ = version("snakepit-perf")  # one version: pyproject.toml's
