# Tests tagged :service POST to a real `snakepit-perf run`; the Python test suite starts one and
# sets SNAKEPIT_PERF_URL (tests/integration/test_elixir_forwarder.py). Without it they are
# excluded, and ExUnit says so.
exclude = if System.get_env("SNAKEPIT_PERF_URL"), do: [], else: [:service]
ExUnit.start(exclude: exclude)
