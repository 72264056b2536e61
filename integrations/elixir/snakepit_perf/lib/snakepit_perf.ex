defmodule SnakepitPerf do
  @moduledoc """
  Sends a host application's Snakepit telemetry and BEAM figures to snakepit-perf.

  Add it to the host's supervision tree after Snakepit:

      children = [
        # ... Snakepit's own children ...
        {SnakepitPerf, url: "http://perf.example:8080", api_key: System.get_env("PERF_KEY")}
      ]

  or configure it in `config.exs` (`config :snakepit_perf, url: ..., api_key: ..., pools:
  [:default]`) and add `SnakepitPerf` alone. Options: see `SnakepitPerf.Forwarder` (batching,
  bounds, retries) and `SnakepitPerf.BeamSampler` (`sample_ms`, `pools`).
  """

  use Supervisor

  def start_link(opts \\ []), do: Supervisor.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(opts) do
    children = [
      {SnakepitPerf.Forwarder, opts},
      {SnakepitPerf.BeamSampler, opts},
      {Task,
       fn -> SnakepitPerf.Forwarder.attach(Keyword.get(opts, :name, SnakepitPerf.Forwarder)) end}
    ]

    Supervisor.init(children, strategy: :rest_for_one)
  end
end
