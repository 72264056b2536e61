defmodule SnakepitPerf.MixProject do
  use Mix.Project

  def project do
    [
      app: :snakepit_perf,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      # No dependencies: :httpc (inets) and :zlib come with OTP, and :telemetry is the host
      # application's own (through Snakepit), called only in SnakepitPerf.Forwarder.attach/1.
      deps: [],
      xref: [exclude: [:telemetry, Snakepit]]
    ]
  end

  def application do
    [extra_applications: [:logger, :inets, :ssl]]
  end
end
