defmodule SnakepitPerf.BeamSampler do
  @moduledoc """
  Every `sample_ms` (10 s), the BEAM's own figures as snakepit-perf `resource` events (R7.1,
  R7.2), Snakepit's pool counters as `pool` `stats` events, and the forwarder's own counts.

  Scheduler utilisation is what `:scheduler.utilization/1` reports, computed from the same
  `:erlang.statistics(:scheduler_wall_time)` counters, as the change between two samples: the
  share of wall time the normal schedulers were busy. (It needs the `scheduler_wall_time` flag,
  which this process turns on; `:scheduler` itself lives in `runtime_tools`, which a release may
  not include.)

  `Snakepit.get_stats/2` is asked for each pool in `pools` when Snakepit is loaded; a pool it
  does not know is skipped.
  """

  use GenServer

  alias SnakepitPerf.Forwarder

  def start_link(opts) do
    opts = Keyword.merge(Application.get_all_env(:snakepit_perf), opts)
    GenServer.start_link(__MODULE__, opts, name: Keyword.get(opts, :sampler_name, __MODULE__))
  end

  @impl true
  def init(opts) do
    :erlang.system_flag(:scheduler_wall_time, true)

    state = %{
      every: Keyword.get(opts, :sample_ms, 10_000),
      forwarder: Keyword.get(opts, :name, Forwarder),
      pools: Keyword.get(opts, :pools, [:default]),
      snakepit: Keyword.get(opts, :snakepit, Snakepit),
      wall: wall_time()
    }

    Process.send_after(self(), :sample, state.every)
    {:ok, state}
  end

  @impl true
  def handle_info(:sample, state) do
    Process.send_after(self(), :sample, state.every)
    {events, wall} = sample(state)
    Enum.each(events, &Forwarder.send_event(&1, state.forwarder))
    {:noreply, %{state | wall: wall}}
  end

  @impl true
  def handle_call(:sample_now, _from, state) do
    {events, wall} = sample(state)
    {:reply, events, %{state | wall: wall}}
  end

  @doc "Take a sample now and return its events (without sending them)."
  def sample_now(name \\ __MODULE__), do: GenServer.call(name, :sample_now)

  defp sample(state) do
    now = System.system_time(:microsecond) / 1_000_000
    wall = wall_time()
    {gcs, _words, _} = :erlang.statistics(:garbage_collection)
    node = Atom.to_string(node())

    beam =
      %{
        "type" => "resource",
        "scope" => "beam",
        "time" => now,
        "host" => node,
        "memory_bytes" => :erlang.memory(:total),
        "heap_bytes" => :erlang.memory(:processes_used),
        "gc_count" => gcs,
        "run_queue" => Enum.sum(:erlang.statistics(:run_queue_lengths)),
        "process_count" => :erlang.system_info(:process_count),
        "port_count" => :erlang.system_info(:port_count)
      }
      |> put_utilization(utilization(state.wall, wall))

    stats = Forwarder.stats(state.forwarder)

    own = %{
      "type" => "native",
      "name" => "snakepit_perf.forwarder",
      "time" => now,
      "node" => node,
      "measurements" => Map.new(stats, fn {k, v} -> {Atom.to_string(k), v} end)
    }

    {[beam, own | pool_stats(state, now)], wall}
  end

  defp put_utilization(event, nil), do: event
  defp put_utilization(event, u), do: Map.put(event, "scheduler_utilization", u)

  defp wall_time do
    case :erlang.statistics(:scheduler_wall_time) do
      :undefined -> nil
      list -> Enum.filter(list, fn {id, _, _} -> id <= :erlang.system_info(:schedulers) end)
    end
  end

  @doc false
  def utilization(nil, _), do: nil
  def utilization(_, nil), do: nil

  def utilization(before, now) do
    {active, total} =
      before
      |> Enum.zip(now)
      |> Enum.reduce({0, 0}, fn {{_, a0, t0}, {_, a1, t1}}, {a, t} ->
        {a + (a1 - a0), t + (t1 - t0)}
      end)

    if total > 0, do: Float.round(active / total, 4), else: nil
  end

  defp pool_stats(state, now) do
    if Code.ensure_loaded?(state.snakepit) and function_exported?(state.snakepit, :get_stats, 2) do
      Enum.flat_map(state.pools, fn pool ->
        case safe_stats(state.snakepit, pool) do
          %{} = s -> [pool_event(pool, s, now)]
          _ -> []
        end
      end)
    else
      []
    end
  end

  defp safe_stats(snakepit, pool) do
    snakepit.get_stats(Snakepit.Pool, pool)
  catch
    _, _ -> nil
  end

  # Snakepit.Pool's per-pool stats (pool/pool.ex, handle_call({:get_stats, name})).
  defp pool_event(pool, s, now) do
    %{
      "type" => "pool",
      "kind" => "stats",
      "time" => now,
      "pool" => to_string(pool),
      "queue_depth" => s[:queued],
      "busy_workers" => s[:busy],
      "available_workers" => s[:available],
      "pool_size" => s[:workers],
      "requests_total" => s[:requests],
      "queue_timeouts_total" => s[:queue_timeouts],
      "errors_total" => s[:errors]
    }
    |> Map.reject(fn {_, v} -> v == nil end)
  end
end
