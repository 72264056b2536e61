defmodule SnakepitPerf.ForwarderTest do
  use ExUnit.Case, async: false

  alias SnakepitPerf.{BeamSampler, Forwarder}

  # A stand-in for the service, for the batching unit tests only: it records each body.
  defp recorder(test_pid, answer \\ fn -> :ok end) do
    fn body ->
      send(test_pid, {:posted, :zlib.gunzip(body)})
      answer.()
    end
  end

  defp start(name, opts) do
    opts = Keyword.merge([name: name, flush_ms: 60_000, reattach_ms: nil], opts)
    start_supervised!({Forwarder, opts}, id: name)
    :persistent_term.get({Forwarder, name})
  end

  defp emit(config, n) do
    for i <- 1..n do
      Forwarder.handle_event(
        [:snakepit, :pool, :saturated],
        %{queue_size: i},
        %{pool: :default, pid: self()},
        config
      )
    end
  end

  defp lines(body), do: String.split(body, "\n")

  test "a full batch is sent at once, the rest on flush, each line an envelope" do
    config = start(:batching, batch_size: 3, post: recorder(self()))
    emit(config, 7)
    assert_receive {:posted, first}, 1000
    assert_receive {:posted, second}, 1000
    assert length(lines(first)) == 3 and length(lines(second)) == 3
    refute_receive {:posted, _}, 100
    :ok = Forwarder.flush(:batching)
    assert_receive {:posted, last}
    assert length(lines(last)) == 1
    assert last =~ ~s("event":["snakepit","pool","saturated"])
    assert last =~ ~s("native_time_unit":#{System.convert_time_unit(1, :second, :native)})
    assert last =~ ~s("node":"#{node()}")
    assert %{sent: 7, dropped: 0, queued: 0} = Forwarder.stats(:batching)
  end

  test "batches go out every flush_ms without a flush call" do
    config = start(:ticking, batch_size: 500, flush_ms: 50, post: recorder(self()))
    emit(config, 2)
    assert_receive {:posted, body}, 1000
    assert length(lines(body)) == 2
  end

  test "a stalled forwarder drops past max_queued, counted, and the emitter never blocks" do
    config = start(:bounded, max_queued: 1000, batch_size: 5000, post: recorder(self()))
    :sys.suspend(:bounded)
    {us, _} = :timer.tc(fn -> emit(config, 20_000) end)
    assert us < 2_000_000
    :sys.resume(:bounded)
    :ok = Forwarder.flush(:bounded)
    assert_receive {:posted, body}
    assert length(lines(body)) == 1000
    assert %{sent: 1000, dropped: 19_000} = Forwarder.stats(:bounded)
  end

  test "the handler returns :ok with no forwarder and with a broken config" do
    config = start(:gone, post: recorder(self()))
    stop_supervised!(:gone)
    assert :ok == Forwarder.handle_event([:snakepit, :x], %{}, %{}, config)
    assert :ok == Forwarder.handle_event([:snakepit, :x], %{}, %{}, %{not: :a_config})
    assert :atomics.get(config.counter, 2) == 1
  end

  test "a failed POST is retried with backoff and nothing is lost" do
    {:ok, answers} = Agent.start_link(fn -> [{:error, :econnrefused}, {:error, {503, ""}}] end)

    answer = fn ->
      Agent.get_and_update(answers, fn
        [a | rest] -> {a, rest}
        [] -> {:ok, []}
      end)
    end

    config = start(:retrying, batch_size: 2, post: recorder(self(), answer))
    emit(config, 2)
    assert_receive {:posted, body}, 1000
    emit(config, 2)
    assert %{sent: 0, failed_posts: 1, waiting_batches: 2} = Forwarder.stats(:retrying)
    assert {:error, :service_unavailable} = Forwarder.flush(:retrying)
    :ok = Forwarder.flush(:retrying)
    assert_receive {:posted, ^body}
    assert_receive {:posted, ^body}
    assert_receive {:posted, _second}

    assert %{sent: 4, dropped: 0, failed_posts: 2, waiting_batches: 0} =
             Forwarder.stats(:retrying)
  end

  test "a body the service refuses (4xx) is dropped and counted, not retried forever" do
    config =
      start(:refused, batch_size: 2, post: recorder(self(), fn -> {:rejected, {413, ""}} end))

    emit(config, 2)
    assert_receive {:posted, _}, 1000
    assert %{sent: 0, dropped: 2, waiting_batches: 0} = Forwarder.stats(:refused)
  end

  test "at most max_batches wait while the service is down; the oldest go, counted" do
    config =
      start(:backlog,
        batch_size: 10,
        max_batches: 3,
        post: recorder(self(), fn -> {:error, :econnrefused} end)
      )

    emit(config, 100)
    assert %{waiting_batches: 3, dropped: 70, sent: 0} = Forwarder.stats(:backlog)
  end

  defmodule FakeTelemetry do
    @moduledoc "Records attach calls, as :telemetry's API has them (for the reattach test)."
    def attach_many(id, events, fun, config) do
      Agent.update(__MODULE__, &[{id, events, fun, config} | &1])
    end

    def detach(_id), do: :ok
    def list_handlers(_prefix), do: []
  end

  test "attach hands every normaliser event to :telemetry, and re-attaches when detached" do
    {:ok, _} = Agent.start_link(fn -> [] end, name: FakeTelemetry)
    start(:attaching, telemetry: FakeTelemetry, reattach_ms: 20, post: recorder(self()))
    :ok = Forwarder.attach(:attaching)
    [{_id, events, fun, _config} | _] = Agent.get(FakeTelemetry, & &1)
    assert [:snakepit, :grpc_worker, :execute, :stop] in events
    assert length(events) == length(SnakepitPerf.Events.names()) and length(events) > 60
    assert fun == (&Forwarder.handle_event/4)
    # list_handlers says it is gone: the check attaches again
    Process.sleep(100)
    assert length(Agent.get(FakeTelemetry, & &1)) >= 3
  end

  defmodule FakeSnakepit do
    @moduledoc "Snakepit.Pool's per-pool get_stats reply, as pool/pool.ex builds it."
    def get_stats(Snakepit.Pool, :default) do
      %{
        requests: 120,
        queued: 3,
        errors: 2,
        queue_timeouts: 1,
        pool_saturated: 0,
        workers: 4,
        available: 1,
        busy: 3
      }
    end

    def get_stats(Snakepit.Pool, other), do: {:error, {:pool_not_found, other}}
  end

  test "the BEAM sample has the node's own figures, Snakepit's pool stats, our counts" do
    start(:sampled, post: recorder(self()))

    start_supervised!(
      {BeamSampler,
       name: :sampled,
       sampler_name: :sampler,
       sample_ms: 60_000,
       snakepit: FakeSnakepit,
       pools: [:default, :missing]}
    )

    # some scheduler work
    Enum.each(1..200_000, fn i -> :erlang.phash2(i) end)
    [beam, own, pool] = BeamSampler.sample_now(:sampler)
    total = :erlang.memory(:total)
    assert_in_delta beam["memory_bytes"], total, total * 0.1
    assert beam["scope"] == "beam" and beam["host"] == Atom.to_string(node())
    assert beam["process_count"] == :erlang.system_info(:process_count)
    assert beam["scheduler_utilization"] > 0 and beam["scheduler_utilization"] <= 1
    {gcs, _, _} = :erlang.statistics(:garbage_collection)
    assert beam["gc_count"] <= gcs and beam["gc_count"] > 0
    assert own["name"] == "snakepit_perf.forwarder" and own["measurements"]["dropped"] == 0

    assert pool == %{
             "type" => "pool",
             "kind" => "stats",
             "time" => pool["time"],
             "pool" => "default",
             "queue_depth" => 3,
             "busy_workers" => 3,
             "available_workers" => 1,
             "pool_size" => 4,
             "requests_total" => 120,
             "queue_timeouts_total" => 1,
             "errors_total" => 2
           }
  end

  test "scheduler utilisation is busy time over wall time between two samples" do
    assert BeamSampler.utilization(
             [{1, 100, 1000}, {2, 0, 1000}],
             [{1, 600, 2000}, {2, 250, 2000}]
           ) == 0.375

    assert BeamSampler.utilization(nil, [{1, 0, 0}]) == nil
  end
end
