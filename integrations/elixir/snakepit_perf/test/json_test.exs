defmodule SnakepitPerf.JSONTest do
  use ExUnit.Case, async: true

  alias SnakepitPerf.JSON

  defmodule Point do
    defstruct [:x, :y]
  end

  defp roundtrip(term), do: term |> JSON.encode() |> IO.iodata_to_binary()

  test "scalars keep their meaning" do
    assert roundtrip(nil) == "null"
    assert roundtrip(true) == "true"
    assert roundtrip(false) == "false"
    assert roundtrip(42) == "42"
    assert roundtrip(-1.5) == "-1.5"
    assert roundtrip(123_456_789_012_345_678_901_234) == "123456789012345678901234"
    assert roundtrip(:ok) == ~s("ok")
    assert roundtrip(Snakepit.Pool) == ~s("Elixir.Snakepit.Pool")
  end

  test "strings are escaped, invalid UTF-8 is Base64, charlists are text" do
    assert roundtrip(~s(a"b\\c\n\t\r) <> <<1>>) == ~s("a\\"b\\\\c\\n\\t\\r\\u0001")
    assert roundtrip("héllo ✓") == ~s("héllo ✓")
    assert roundtrip(<<255, 0, 1>>) == ~s("base64:/wAB")
    assert roundtrip(~c"worker") == ~s("worker")
    assert roundtrip(<<1::3>>) == ~s["<<1::size(3)>>"]
  end

  test "pids, refs, ports and funs are their inspect text" do
    pid = self()
    ref = make_ref()
    port = Port.open({:spawn, "true"}, [])
    fun = fn -> :ok end
    assert roundtrip(pid) == ~s(") <> inspect(pid) <> ~s(")
    assert roundtrip(ref) == ~s(") <> inspect(ref) <> ~s(")
    assert roundtrip(port) == ~s(") <> inspect(port) <> ~s(")
    assert roundtrip(fun) =~ ~s("#Function<)
  end

  test "tuples, structs, odd keys and improper lists" do
    assert roundtrip({:error, {:timeout, 5000}}) == ~s(["error",["timeout",5000]])
    assert JSON.render(%Point{x: 1, y: 2}) == %{"x" => 1, "y" => 2}

    assert JSON.render(%{{:a, 1} => 1, 2 => :b, "c" => nil}) ==
             %{"{:a, 1}" => 1, "2" => "b", "c" => nil}

    assert JSON.render([1, 2 | 3]) == [1, 2, 3]
    assert JSON.render([]) == []
    assert JSON.render([:a, "b"]) == ["a", "b"]
  end

  test "depth and size are bounded" do
    deep = Enum.reduce(1..100_000, :leaf, fn _, acc -> %{n: acc} end)
    text = roundtrip(deep)
    assert byte_size(text) < 200
    assert text =~ "nested too deep"
    long = Enum.to_list(1..100_000)
    assert length(JSON.render(long)) == 257
    assert List.last(JSON.render(long)) == "…(cut)"
    assert byte_size(roundtrip(String.duplicate("x", 100_000))) == 4098
  end

  # The Python side parses the forwarder's real output with orjson (test_elixir_forwarder.py).
  test "an envelope renders as one JSON object" do
    term = %{event: [:snakepit, :pool, :saturated], meta: %{pid: self(), t: {1, 2}}}
    text = roundtrip(term)
    assert String.starts_with?(text, "{") and String.ends_with?(text, "}")
    assert text =~ ~s("event":["snakepit","pool","saturated"])
  end
end
