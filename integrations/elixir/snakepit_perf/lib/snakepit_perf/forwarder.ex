defmodule SnakepitPerf.Forwarder do
  @moduledoc """
  Batches events and POSTs them to snakepit-perf as gzipped NDJSON; the `:telemetry` handler.

  The handler runs in the process that emitted the event (a Snakepit worker, the pool), so it
  does the least it can and can neither block nor crash: it checks a bounded counter (an
  `:atomics` cell), sends one message, and returns. Past `max_queued` events waiting, events are
  dropped and counted. Everything else happens here: the envelope (`time`, `node`,
  `native_time_unit`), rendering terms to JSON, batching (`batch_size` events or `flush_ms`),
  gzip, the POST with `:httpc`, retries with exponential backoff. A batch the service did not
  take is kept and sent again; at most `max_batches` wait, then the oldest is dropped and
  counted. `stats/1` returns the counts, and each BEAM sample carries them to the service.

  `attach/1` is the one call into `:telemetry` (the host's dependency through Snakepit); a
  handler that `:telemetry` detached (it does after an exception) is attached again by the
  periodic check.
  """

  use GenServer
  require Logger

  alias SnakepitPerf.{Events, JSON}

  @handler_id "snakepit-perf-forwarder"
  @defaults [
    url: "http://127.0.0.1:8080",
    api_key: nil,
    batch_size: 500,
    flush_ms: 1_000,
    max_queued: 10_000,
    max_batches: 20,
    timeout_ms: 10_000,
    max_backoff_ms: 30_000,
    reattach_ms: 10_000,
    telemetry: :telemetry,
    post: nil,
    name: __MODULE__
  ]

  # -- the handler ---------------------------------------------------------------------------

  @doc "The `:telemetry` handler: never raises, never blocks."
  @spec handle_event([atom()], map(), map(), map()) :: :ok
  def handle_event(event, measurements, metadata, %{counter: _, name: _, max_queued: _} = config) do
    queue(config, {:event, event, measurements, metadata, System.system_time(:microsecond)})
  catch
    _, _ -> :ok
  end

  def handle_event(_event, _measurements, _metadata, _config), do: :ok

  @doc "Queue a canonical snakepit-perf event (a map with `type`); same bounds as the handler."
  @spec send_event(map(), GenServer.name()) :: :ok
  def send_event(event, name \\ __MODULE__) do
    case :persistent_term.get({__MODULE__, name}, nil) do
      nil -> :ok
      config -> queue(config, {:canonical, event})
    end
  end

  # cell 1 of the counter: messages waiting in the forwarder's mailbox; cell 2: dropped
  defp queue(%{counter: counter, name: name, max_queued: max}, message) do
    if :atomics.add_get(counter, 1, 1) > max do
      :atomics.sub(counter, 1, 1)
      :atomics.add(counter, 2, 1)
    else
      case Process.whereis(name) do
        nil ->
          :atomics.sub(counter, 1, 1)
          :atomics.add(counter, 2, 1)

        pid ->
          send(pid, message)
      end
    end

    :ok
  end

  @doc "Attach the handler to every event in `SnakepitPerf.Events`."
  @spec attach(GenServer.name()) :: :ok | {:error, term()}
  def attach(name \\ __MODULE__) do
    config = :persistent_term.get({__MODULE__, name})
    telemetry = config.telemetry

    if Code.ensure_loaded?(telemetry) do
      _ = telemetry.detach(handler_id(name))
      telemetry.attach_many(handler_id(name), Events.names(), &__MODULE__.handle_event/4, config)
    else
      Logger.warning("snakepit-perf: #{inspect(telemetry)} is not loaded; nothing attached")
      {:error, :no_telemetry}
    end
  end

  defp handler_id(__MODULE__), do: @handler_id
  defp handler_id(name), do: "#{@handler_id}-#{inspect(name)}"

  @doc "Counts: `sent`, `dropped`, `failed_posts`, `queued`, `waiting_batches`."
  @spec stats(GenServer.name()) :: map()
  def stats(name \\ __MODULE__), do: GenServer.call(name, :stats)

  @doc "Send what is batched now; returns once the service took it or the attempt failed."
  @spec flush(GenServer.name(), timeout()) :: :ok | {:error, term()}
  def flush(name \\ __MODULE__, timeout \\ 30_000), do: GenServer.call(name, :flush, timeout)

  # -- the process ---------------------------------------------------------------------------

  def start_link(opts) do
    opts = Keyword.merge(@defaults, Keyword.merge(Application.get_all_env(:snakepit_perf), opts))
    GenServer.start_link(__MODULE__, opts, name: opts[:name])
  end

  @impl true
  def init(opts) do
    # cell 1: events waiting in the mailbox; 2: dropped; 3: sent
    counter = :atomics.new(3, signed: true)
    name = opts[:name]

    config = %{
      counter: counter,
      name: name,
      max_queued: opts[:max_queued],
      telemetry: opts[:telemetry]
    }

    :persistent_term.put({__MODULE__, name}, config)
    headers = [{~c"content-encoding", ~c"gzip"}]

    headers =
      if opts[:api_key],
        do: [{~c"authorization", String.to_charlist("Bearer " <> opts[:api_key])} | headers],
        else: headers

    state = %{
      opts: Map.new(opts),
      counter: counter,
      url: String.to_charlist(String.trim_trailing(opts[:url], "/") <> "/v1/events"),
      headers: headers,
      lines: [],
      n: 0,
      batches: :queue.new(),
      failures: 0,
      failed_posts: 0,
      retry_at: nil,
      unit: System.convert_time_unit(1, :second, :native),
      node: Atom.to_string(node())
    }

    Process.send_after(self(), :tick, opts[:flush_ms])
    if opts[:reattach_ms], do: Process.send_after(self(), :reattach, opts[:reattach_ms])
    {:ok, state}
  end

  @impl true
  def handle_info({:event, event, measurements, metadata, time_us}, state) do
    :atomics.sub(state.counter, 1, 1)
    line = envelope(event, measurements, metadata, time_us, state)
    {:noreply, add(state, line)}
  end

  def handle_info({:canonical, event}, state) do
    :atomics.sub(state.counter, 1, 1)
    {:noreply, add(state, encode_line(event))}
  end

  def handle_info(:tick, state) do
    Process.send_after(self(), :tick, state.opts.flush_ms)
    {:noreply, state |> cut() |> send_batches()}
  end

  def handle_info(:reattach, state) do
    Process.send_after(self(), :reattach, state.opts.reattach_ms)
    telemetry = state.opts.telemetry

    attached =
      try do
        not Code.ensure_loaded?(telemetry) or
          Enum.any?(telemetry.list_handlers([:snakepit]), &(&1.id == handler_id(state.opts.name)))
      catch
        _, _ -> true
      end

    unless attached, do: attach(state.opts.name)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  @impl true
  def handle_call(:stats, _from, state) do
    {:reply,
     %{
       sent: :atomics.get(state.counter, 3),
       dropped: :atomics.get(state.counter, 2),
       queued: :atomics.get(state.counter, 1) + state.n,
       failed_posts: state.failed_posts,
       waiting_batches: :queue.len(state.batches)
     }, state}
  end

  def handle_call(:flush, _from, state) do
    state = %{cut(state) | retry_at: nil} |> send_batches()

    reply = if :queue.is_empty(state.batches), do: :ok, else: {:error, :service_unavailable}

    {:reply, reply, state}
  end

  @impl true
  def terminate(_reason, state) do
    state |> cut() |> Map.put(:retry_at, nil) |> send_batches()
    :ok
  end

  # -- batching ------------------------------------------------------------------------------

  defp envelope(event, measurements, metadata, time_us, state) do
    encode_line(%{
      "event" => event,
      "measurements" => measurements,
      "metadata" => metadata,
      "time" => time_us / 1_000_000,
      "node" => state.node,
      "native_time_unit" => state.unit
    })
  end

  defp encode_line(term) do
    JSON.encode(term)
  rescue
    error ->
      JSON.encode(%{
        "type" => "native",
        "name" => "snakepit_perf.render_error",
        "time" => System.system_time(:microsecond) / 1_000_000,
        "known" => false,
        "reason" => Exception.message(error)
      })
  end

  defp add(state, line) do
    state = %{state | lines: [line | state.lines], n: state.n + 1}
    if state.n >= state.opts.batch_size, do: state |> cut() |> send_batches(), else: state
  end

  # The lines so far become one waiting batch (the oldest batch goes past max_batches).
  defp cut(%{n: 0} = state), do: state

  defp cut(state) do
    body = state.lines |> Enum.reverse() |> Enum.intersperse(?\n) |> :zlib.gzip()
    batches = :queue.in({body, state.n}, state.batches)

    batches =
      if :queue.len(batches) > state.opts.max_batches do
        {{:value, {_, lost}}, rest} = :queue.out(batches)
        :atomics.add(state.counter, 2, lost)
        rest
      else
        batches
      end

    %{state | lines: [], n: 0, batches: batches}
  end

  defp send_batches(%{retry_at: at} = state) when is_integer(at) do
    if System.monotonic_time(:millisecond) >= at,
      do: send_batches(%{state | retry_at: nil}),
      else: state
  end

  defp send_batches(state) do
    case :queue.peek(state.batches) do
      :empty ->
        state

      {:value, {body, n}} ->
        case post(body, state) do
          :ok ->
            :atomics.add(state.counter, 3, n)
            send_batches(%{state | batches: :queue.drop(state.batches), failures: 0})

          {:rejected, reason} ->
            # the service answered and will not take this body (400, 401, 413): sending it again
            # cannot help, so it is dropped, counted and logged
            :atomics.add(state.counter, 2, n)
            Logger.error("snakepit-perf: batch of #{n} events refused: #{inspect(reason)}")
            send_batches(%{state | batches: :queue.drop(state.batches)})

          {:error, reason} ->
            failures = state.failures + 1
            backoff = min(state.opts.max_backoff_ms, 250 * Integer.pow(2, min(failures, 10)))

            if failures == 1,
              do: Logger.warning("snakepit-perf: POST failed (#{inspect(reason)}), retrying")

            %{
              state
              | failures: failures,
                failed_posts: state.failed_posts + 1,
                retry_at: System.monotonic_time(:millisecond) + backoff
            }
        end
    end
  end

  # `post:` replaces the HTTP call in the forwarder's own unit tests (a function of the body).
  defp post(body, %{opts: %{post: post}}) when is_function(post, 1), do: post.(body)

  defp post(body, state) do
    request = {state.url, state.headers, ~c"application/x-ndjson", body}
    options = [timeout: state.opts.timeout_ms, connect_timeout: state.opts.timeout_ms]

    case :httpc.request(:post, request, options, body_format: :binary) do
      {:ok, {{_, status, _}, _, _}} when status in 200..299 ->
        :ok

      {:ok, {{_, status, _}, _, body}} when status == 429 or status >= 500 ->
        {:error, {status, String.slice(body, 0, 200)}}

      {:ok, {{_, status, _}, _, body}} ->
        {:rejected, {status, String.slice(body, 0, 200)}}

      {:error, reason} ->
        {:error, reason}
    end
  end
end
