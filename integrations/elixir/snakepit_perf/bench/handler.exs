# The forwarder's cost per event in the emitting process: `handle_event/4` on a Snakepit
# execute-stop event, against a bare `send/2` of the same event (the least any handler that
# hands work to another process can do), in the same run. Aim: <= 10 us per event.
#
#     mix run bench/handler.exs [events]
alias SnakepitPerf.Forwarder

n = String.to_integer(List.first(System.argv()) || "100000")

{:ok, _} =
  Forwarder.start_link(
    post: fn _ -> :ok end,
    max_queued: 10 * n,
    batch_size: 500,
    reattach_ms: nil
  )

config = :persistent_term.get({Forwarder, Forwarder})
sink = spawn(fn -> Stream.repeatedly(fn -> receive do: (_ -> :ok) end) |> Stream.run() end)

event = [:snakepit, :grpc_worker, :execute, :stop]
measurements = %{duration: 25_000_000, executions: 1, monotonic_time: -576_460_751_234_567_890}

metadata = %{
  operation: :execute,
  worker_id: "default_worker_1_1001",
  worker_pid: self(),
  command: "predict",
  pool: Snakepit.Pool,
  correlation_id: "c-1",
  status: :ok,
  adapter: Snakepit.Adapters.GRPCPython,
  timeout_ms: 30_000,
  telemetry_span_context: make_ref()
}

best = fn fun ->
  Enum.map(1..5, fn _ ->
    {us, _} = :timer.tc(fn -> Enum.each(1..n, fn _ -> fun.() end) end)
    us
  end)
  |> Enum.min()
  |> Kernel./(n)
end

bare = best.(fn -> send(sink, {:event, event, measurements, metadata, 0}) end)
handler = best.(fn -> Forwarder.handle_event(event, measurements, metadata, config) end)
:ok = Forwarder.flush(Forwarder, 300_000)
# The forwarder's own pace (render, batch, gzip): what a node can emit before drops begin.
{drain_us, _} =
  :timer.tc(fn ->
    Enum.each(1..n, fn _ -> Forwarder.handle_event(event, measurements, metadata, config) end)
    :ok = Forwarder.flush(Forwarder, 300_000)
  end)

%{sent: sent, dropped: dropped} = Forwarder.stats()

IO.puts("\n## Elixir forwarder: cost per event in the emitting process (best of 5, #{n} events)")
IO.puts("  bare send/2 of the event        #{Float.round(bare, 3)} us/event  (1.00x baseline)")

IO.puts(
  "  Forwarder.handle_event/4        #{Float.round(handler, 3)} us/event  " <>
    "(#{Float.round(handler / bare, 2)}x baseline)"
)

IO.puts("  forwarder throughput (render, gzip, hand to POST): " <>
          "#{round(n / (drain_us / 1_000_000))} events/s")
IO.puts("  events sent on by the forwarder: #{sent}, dropped: #{dropped}")
