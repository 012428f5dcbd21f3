# frozen_string_literal: true

require_relative "test_helper"

# Bridge::Codec::Msgpack::Reader on hand-made bytes: every msgpack type skipped under an unknown
# key, the errors wire contract 5.8 lists, and lengths checked before anything is allocated.
class TestMsgpackReader < Minitest::Test
  Scalars = Bridge::Interop::V1::Scalars
  F_INT32_1 = "a7665f696e74333201" # "f_int32": 1

  def decode(hex, klass = Scalars) = Bridge::Codec::Msgpack.decode(klass, [hex.delete(" ")].pack("H*"))
  def rejects(hex, pattern = nil)
    error = assert_raises(Bridge::DecodeError) { decode(hex) }
    assert_match pattern, error.message if pattern
  end

  # An unknown key "zz" with +value+ before f_int32 = 1: the reader must land on the next key.
  def with_unknown(value) = decode("82 a27a7a #{value} #{F_INT32_1}")

  def test_every_type_under_an_unknown_key_is_skipped
    values = {
      "positive fixint" => "05", "negative fixint" => "e0", "nil" => "c0", "true" => "c3",
      "uint8" => "cc ff", "uint16" => "cd ffff", "uint32" => "ce ffffffff", "uint64" => "cf ffffffffffffffff",
      "int8" => "d0 80", "int16" => "d1 8000", "int32" => "d2 80000000", "int64" => "d3 8000000000000000",
      "float32" => "ca 3f800000", "float64" => "cb 3ff0000000000000",
      "fixstr" => "a3 616263", "str8" => "d9 03 616263", "str16" => "da 0003 616263", "str32" => "db 00000003 616263",
      "bin8" => "c4 03 00ff00", "bin16" => "c5 0003 00ff00", "bin32" => "c6 00000003 00ff00",
      "fixext1" => "d4 05 aa", "fixext2" => "d5 05 aabb", "fixext4" => "d6 05 aabbccdd",
      "fixext8" => "d7 05 #{'aa' * 8}", "fixext16" => "d8 05 #{'aa' * 16}",
      "ext8" => "c7 03 05 aabbcc", "ext16" => "c8 0003 05 aabbcc", "ext32" => "c9 00000003 05 aabbcc",
      "fixarray" => "93 01 a161 c3", "array16" => "dc 0002 01 02", "array32" => "dd 00000002 01 02",
      "fixmap" => "82 01 02 a161 90", "map16" => "de 0001 01 02", "map32" => "df 00000001 01 02",
      "nested" => "91 81 a161 92 c4 01 00 d4 01 00"
    }
    values.each do |name, value|
      assert_equal 1, with_unknown(value).f_int32, name
    end
  end

  def test_a_skipped_value_is_still_checked
    rejects("82 a27a7a c1 #{F_INT32_1}", /0xc1/)
    rejects("82 a27a7a a2 c328 #{F_INT32_1}", /UTF-8/)
    rejects("81 a27a7a c4 05 00", /past the end|remain/)
    rejects("81 a27a7a 92 01", /past the end|remain|exceeds/)
  end

  def test_declared_sizes_beyond_the_data_are_refused_before_allocating
    {
      "map32" => "df ffffffff",
      "str32" => "81 a8665f737472696e67 db ffffffff",
      "bin32" => "81 a7665f6279746573 c6 ffffffff",
      "ext32 unknown" => "81 a27a7a c9 ffffffff 05",
      "array under unknown" => "81 a27a7a dd ffffffff"
    }.each do |name, hex|
      error = assert_raises(Bridge::DecodeError, name) { decode(hex) }
      assert_match(/4294967295|remain|exceeds|past the end/, error.message, name)
    end
    # the issue-11 poison body: Composite.numbers claiming 4 billion items
    error = assert_raises(Bridge::DecodeError) { decode("81 a76e756d62657273 dd ffffffff", Bridge::Interop::V1::Composite) }
    assert_match(/4294967295/, error.message)
  end

  def test_contract_errors
    assert_equal Scalars.new, decode("")
    rejects("c0", /must be a msgpack map/)
    rejects("91 01", /must be a msgpack map/)
    rejects("81 01 01", /not a field name/)
    rejects("81 a7665f696e743332 c0 00", /bytes after/)
    rejects("81 a7665f696e743332 d4 05 aa", /expected an integer, got ext/)
    rejects("81 a7665f696e743332 ce 80000000", /out of range/)
    rejects("81 a6665f626f6f6c 01", /expected a bool/)
    rejects("81 a8665f646f75626c65 01", /expected a float/)
  end

  # A key given twice: the last wins (nil included), as in Python's msgpack maps; a oneof member
  # given twice is still one member.
  def test_a_repeated_key_keeps_the_last_value
    composite = Bridge::Interop::V1::Composite
    numbers = "a76e756d62657273"
    text = "a474657874"
    assert_equal [3], decode("82 #{numbers} 920102 #{numbers} 9103", composite).numbers.to_a
    assert_equal "b", decode("82 #{text} a161 #{text} a162", composite).text
    assert_equal "", decode("82 #{text} a161 #{text} c0", composite).text
    assert_equal :text, decode("83 #{text} a161 a66e756d626572c0 #{text} a162", composite).choice
    assert_equal "a", decode("82 #{text} a161 a66e756d626572c0", composite).text
    assert_raises(Bridge::DecodeError) { decode("82 #{text} a161 a66e756d62657203", composite) }
  end
end
