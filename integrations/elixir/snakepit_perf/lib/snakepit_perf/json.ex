defmodule SnakepitPerf.JSON do
  @moduledoc """
  Any Erlang term to JSON, without a crash and without a dependency (Elixir 1.14 has no JSON
  module, and Hex is not a given).

  Telemetry metadata can hold anything: pids, references, ports, functions, tuples, structs,
  charlists, binaries that are not UTF-8, maps keyed by tuples, improper lists. Each becomes
  something JSON can carry: atoms and UTF-8 binaries are strings (`nil`, `true`, `false` keep
  their meaning), tuples are arrays, structs are objects (their `__struct__` dropped), map keys
  are rendered as text, other binaries are Base64, and what has no JSON shape (pids, refs,
  ports, funs) is its `inspect/1` text. Depth and size are bounded so that one huge term cannot
  stall the forwarder: past `@max_depth` levels or `@max_items` elements a value is cut and
  marked.
  """

  @max_depth 8
  @max_items 256
  @max_binary 4096

  @doc "The term as JSON text (iodata)."
  @spec encode(term()) :: iodata()
  def encode(term), do: term |> render() |> emit()

  @doc "The term as plain JSON-shaped data: maps with string keys, lists, strings, numbers."
  @spec render(term(), non_neg_integer()) :: term()
  def render(term, depth \\ 0)
  def render(nil, _), do: nil
  def render(b, _) when is_boolean(b), do: b
  def render(n, _) when is_integer(n) or is_float(n), do: n
  def render(a, _) when is_atom(a), do: Atom.to_string(a)

  def render(b, _) when is_binary(b) do
    b = if byte_size(b) > @max_binary, do: binary_part(b, 0, @max_binary), else: b
    if String.valid?(b), do: b, else: "base64:" <> Base.encode64(b)
  end

  def render(_, depth) when depth >= @max_depth, do: "…(nested too deep)"
  def render(%{__struct__: _} = s, depth), do: s |> Map.from_struct() |> render(depth)

  def render(m, depth) when is_map(m) do
    m
    |> Enum.take(@max_items)
    |> Map.new(fn {k, v} -> {key(k), render(v, depth + 1)} end)
  end

  def render(t, depth) when is_tuple(t), do: t |> Tuple.to_list() |> render(depth)

  def render(l, depth) when is_list(l) do
    if l != [] and not List.improper?(l) and length(l) <= @max_binary and
         List.ascii_printable?(l) do
      List.to_string(l)
    else
      list(l, depth + 1, 0, [])
    end
  end

  def render(b, _) when is_bitstring(b), do: inspect(b)
  def render(other, _), do: inspect(other)

  # Proper and improper lists alike, at most @max_items elements.
  defp list([], _depth, _n, acc), do: Enum.reverse(acc)
  defp list(_, _depth, @max_items, acc), do: Enum.reverse(["…(cut)" | acc])
  defp list([h | t], depth, n, acc), do: list(t, depth, n + 1, [render(h, depth) | acc])
  defp list(tail, depth, _n, acc), do: Enum.reverse([render(tail, depth) | acc])

  defp key(k) when is_binary(k), do: render(k)
  defp key(k) when is_atom(k), do: Atom.to_string(k)
  defp key(k), do: inspect(k, limit: 20, printable_limit: 200)

  # -- JSON text ------------------------------------------------------------------------------

  defp emit(nil), do: "null"
  defp emit(true), do: "true"
  defp emit(false), do: "false"
  defp emit(n) when is_integer(n), do: Integer.to_string(n)
  defp emit(f) when is_float(f), do: Float.to_string(f)
  defp emit(s) when is_binary(s), do: [?", escape(s, 0, s, []), ?"]

  defp emit(m) when is_map(m) do
    pairs = Enum.map(m, fn {k, v} -> [emit(k), ?:, emit(v)] end)
    [?{, Enum.intersperse(pairs, ?,), ?}]
  end

  defp emit(l) when is_list(l), do: [?[, Enum.intersperse(Enum.map(l, &emit/1), ?,), ?]]

  # Copies runs of bytes that need no escaping in one piece.
  defp escape(<<>>, n, orig, acc),
    do: Enum.reverse([binary_part(orig, byte_size(orig) - n, n) | acc])

  defp escape(<<c, rest::binary>>, n, orig, acc) when c in [?", ?\\] or c < 0x20 do
    start = byte_size(orig) - byte_size(rest) - 1 - n
    acc = [escaped(c), binary_part(orig, start, n) | acc]
    escape(rest, 0, orig, acc)
  end

  defp escape(<<_, rest::binary>>, n, orig, acc), do: escape(rest, n + 1, orig, acc)

  defp escaped(?"), do: "\\\""
  defp escaped(?\\), do: "\\\\"
  defp escaped(?\n), do: "\\n"
  defp escaped(?\r), do: "\\r"
  defp escaped(?\t), do: "\\t"

  defp escaped(c),
    do: "\\u00" <> String.pad_leading(Integer.to_string(c, 16), 2, "0")
end
