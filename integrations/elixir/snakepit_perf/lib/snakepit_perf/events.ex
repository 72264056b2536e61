defmodule SnakepitPerf.Events do
  @moduledoc """
  The Snakepit events the forwarder attaches to: every name snakepit-perf's normaliser
  understands, read at compile time from `priv/events.txt` (a Python test keeps that file
  equal to the normaliser's table, so the two sides cannot drift apart).
  """

  @path Path.join([__DIR__, "..", "..", "priv", "events.txt"])
  @external_resource @path

  @names @path
         |> File.read!()
         |> String.split("\n", trim: true)
         |> Enum.reject(&String.starts_with?(&1, "#"))
         |> Enum.map(fn line -> line |> String.split(".") |> Enum.map(&String.to_atom/1) end)

  @doc "Event names as `:telemetry` spells them: `[:snakepit, :pool, :saturated]`."
  @spec names() :: [[atom()]]
  def names, do: @names
end
