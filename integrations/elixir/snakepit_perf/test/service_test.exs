defmodule SnakepitPerf.ServiceTest do
  @moduledoc """
  Snakepit's events, as its source emits them (grpc_worker/instrumentation.ex, pool.ex), through
  the real handler and forwarder to a real `snakepit-perf run` (SNAKEPIT_PERF_URL); the counts
  the service then answers must be what was sent.
  """
  use ExUnit.Case, async: false

  alias SnakepitPerf.Forwarder

  @moduletag :service

  defp url, do: System.fetch_env!("SNAKEPIT_PERF_URL")

  # instrumentation.ex base_execute_metadata/6 and build_stop_metadata/2; the pool is the Pool
  # GenServer's name, the logical pool is in the worker id (pool/initializer.ex).
  defp execute_stop(config, pool, i, status) do
    worker = "#{pool}_worker_#{rem(i, 3)}_#{1000 + rem(i, 3)}"
    duration = System.convert_time_unit(20 + rem(i, 50), :millisecond, :native)

    meta = %{
      operation: :execute,
      worker_id: worker,
      worker_pid: self(),
      command: "predict",
      adapter: Snakepit.Adapters.GRPCPython,
      pool: Snakepit.Pool,
      session_id: nil,
      correlation_id: "corr-#{pool}-#{i}",
      timeout_ms: 30_000,
      telemetry_span_context: make_ref(),
      status: status
    }

    measurements = %{duration: duration, executions: 1, monotonic_time: System.monotonic_time()}

    measurements = if status == :error, do: Map.put(measurements, :errors, 1), else: measurements

    meta = if status == :error, do: Map.put(meta, :error, {:error, :worker_crashed}), else: meta
    Forwarder.handle_event([:snakepit, :grpc_worker, :execute, :stop], measurements, meta, config)
  end

  defp get_json(path) do
    {:ok, {{_, 200, _}, _, body}} =
      :httpc.request(:get, {String.to_charlist(url() <> path), []}, [], body_format: :binary)

    body
  end

  defp counts(metric, from, to) do
    body = get_json("/v1/query?metric=#{metric}&stat=count&from=#{from}&to=#{to}&group_by=pool")

    Regex.scan(~r/"pool":"([^"]+)"\},"points":\[\[\d+,([\d.]+)\]\]/, body)
    |> Map.new(fn [_, pool, n] -> {pool, round(String.to_float(n))} end)
  end

  defp wait_until(fun, deadline) do
    cond do
      fun.() -> :ok
      System.monotonic_time(:millisecond) > deadline -> flunk("timed out")
      true -> Process.sleep(500) && wait_until(fun, deadline)
    end
  end

  test "what the forwarder sends is what the service stores, per logical pool" do
    from = System.system_time(:second) - 60

    start_supervised!(
      {SnakepitPerf, url: url(), batch_size: 250, flush_ms: 200, sample_ms: 300, reattach_ms: nil}
    )

    config = :persistent_term.get({Forwarder, Forwarder})

    for i <- 1..1200,
        do: execute_stop(config, "default", i, if(rem(i, 10) == 0, do: :error, else: :ok))

    for i <- 1..300, do: execute_stop(config, "gpu_pool", i, :ok)
    # at least one BEAM sample
    Process.sleep(400)
    :ok = Forwarder.flush()
    assert %{sent: sent, dropped: 0} = Forwarder.stats()
    assert sent >= 1500
    to = System.system_time(:second) + 60
    want = %{"default" => 1200, "gpu_pool" => 300}
    deadline = System.monotonic_time(:millisecond) + 60_000
    wait_until(fn -> counts("requests_total", from, to) == want end, deadline)
    assert counts("request_errors_total", from, to) == %{"default" => 120, "gpu_pool" => 0}

    beam =
      get_json("/v1/query?metric=beam_processes&stat=last&from=#{from}&to=#{to}&group_by=host")

    assert beam =~ ~s("host":"#{node()}")
    assert get_json("/v1/rejects") == "[]"
  end
end
