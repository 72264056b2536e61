"""A realistic Snakepit deployment in simulation: the load generator behind ``snakepit-perf simulate``."""
