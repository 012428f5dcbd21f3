# frozen_string_literal: true

require_relative "test_helper"
require "json"
require "google/protobuf/empty_pb"

# Every case of schemas/testdata/bare_json_vectors.json (wire contract sections 8.2 and 8.5): what
# Bridge::Codec::BareJson writes (compared as parsed JSON: key order ignored, numbers by value, a
# float field after rounding to float 32), what it reads, and what it refuses.
class TestBareJsonVectors < Minitest::Test
  VECTORS = File.join(TestSupport::REPO_ROOT, "schemas", "testdata", "bare_json_vectors.json")
  CASES = JSON.parse(File.read(VECTORS), max_nesting: false)
  Codec = Bridge::Codec
  # upb's JSON parser stops at 64 levels: deeper canonical JSON is read with the codec under test
  # (which reads canonical JSON too), shallower with upb's decode_json.
  UPB_DEPTH_LIMIT = 60

  def self.klass(type)
    Google::Protobuf::DescriptorPool.generated_pool.lookup(type)&.msgclass or raise "no Ruby class for #{type}"
  end

  def self.depth(json)
    return 0 unless json.is_a?(Hash) || json.is_a?(Array)

    1 + (json.is_a?(Hash) ? json.values : json).map { |v| depth(v) }.max.to_i
  end

  # The message of a case's canonical JSON.
  def canonical(klass, vector)
    json = vector.fetch("json")
    text = JSON.generate(json, max_nesting: false)
    TestBareJsonVectors.depth(json) > UPB_DEPTH_LIMIT ? Codec::BareJson.decode(klass, text) : klass.decode_json(text)
  end

  # Messages compared by their msgpack bytes (canonical, NaN included).
  def assert_same_message(expected, actual, message = nil)
    assert_equal Codec::Msgpack.encode(expected).unpack1("H*"), Codec::Msgpack.encode(actual).unpack1("H*"), message
  end

  def f32(value) = value.is_a?(String) ? value : [value.to_f].pack("e").unpack1("e")

  def assert_same_json(expected, actual, descriptor, path)
    if descriptor.name.start_with?("google.protobuf.")
      assert_equal expected, actual, path
      return
    end
    assert_kind_of Hash, actual, path
    assert_equal expected.keys.sort, actual.keys.sort, "#{path}: keys"
    fields = Codec::Msgpack.plan_by_name(descriptor)
    expected.each do |key, value|
      field = fields.fetch(key)
      got = actual[key]
      case field.kind
      when :repeated
        assert_equal value.size, got.size, "#{path}.#{key}: items"
        value.zip(got).each_with_index { |(e, a), i| assert_same_value(field.type, field.subtype, e, a, "#{path}.#{key}[#{i}]") }
      when :map
        assert_equal value.keys.sort, got.keys.sort, "#{path}.#{key}: map keys"
        value.each { |k, e| assert_same_value(field.value.type, field.value.subtype, e, got[k], "#{path}.#{key}[#{k}]") }
      else assert_same_value(field.type, field.subtype, value, got, "#{path}.#{key}")
      end
    end
  end

  def assert_same_value(type, subtype, expected, actual, path)
    case type
    when :message then assert_same_json(expected, actual, subtype, path)
    when :float, :double
      expected, actual = f32(expected), f32(actual) if type == :float
      if expected.is_a?(String) || actual.is_a?(String)
        assert_equal expected, actual, path # "NaN", "Infinity", "-Infinity"
      else
        assert_kind_of Numeric, actual, path
        assert_equal [expected.to_f].pack("G"), [actual.to_f].pack("G"), "#{path}: #{expected} != #{actual} (sign included)"
      end
    else
      assert_equal expected, actual, path
      assert_equal expected.class, actual.class, "#{path}: JSON type" # 64-bit integers as numbers
    end
  end

  def test_there_are_vectors_of_every_kind
    assert_operator CASES.size, :>=, 100
    assert(CASES.any? { |c| c["invalid"] && c["bare_json_text_hex"] })
    assert(CASES.any? { |c| c["decode_only"] })
    assert(CASES.any? { |c| c["name"] == "nesting_100" })
  end

  CASES.each do |vector|
    name = vector.fetch("name")
    klass = klass(vector.fetch("type"))
    if vector["invalid"]
      define_method("test_#{name}_is_rejected") do
        text = vector["bare_json_text_hex"] ? [vector["bare_json_text_hex"]].pack("H*") : vector.fetch("bare_json_text")
        assert_raises(Bridge::DecodeError) { Codec.decode(klass, text.b, :json) }
      end
    elsif vector["decode_only"]
      define_method("test_#{name}_decodes") do
        decoded = Codec.decode(klass, vector.fetch("bare_json_text").b, :json)
        assert_same_message canonical(klass, vector), decoded
      end
    else
      define_method("test_#{name}") do
        message = canonical(klass, vector)
        written = Codec.encode(message, :json)
        assert_equal Encoding::BINARY, written.encoding
        assert written.dup.force_encoding(Encoding::UTF_8).valid_encoding?
        assert_same_json vector.fetch("bare_json"), JSON.parse(written, max_nesting: false), klass.descriptor, klass.descriptor.name
        assert_same_message message, Codec.decode(klass, written, :json), "what it writes reads back"
        given = JSON.generate(vector.fetch("bare_json"), max_nesting: false).b
        assert_same_message message, Codec.decode(klass, given, :json), "the vector's bare_json reads as json"
      end
    end
  end

  def test_writes_unicode_as_utf8_and_minus_zero_with_its_sign
    message = Bridge::Interop::V1::Scalars.new(f_string: "é✓", f_double: -0.0, f_float: 0.1)
    written = Codec.encode(message, :json).force_encoding(Encoding::UTF_8)
    assert_includes written, '"f_string":"é✓"'
    assert_includes written, '"f_double":-0.0'
    assert_includes written, '"f_float":0.1,'
  end

  def test_deeper_than_the_limit_is_not_written
    top = Bridge::Interop::V1::Composite.new
    node = top
    101.times { node = (node.child = Bridge::Interop::V1::Composite.new) }
    assert_raises(Bridge::EncodeError) { Codec.encode(top, :json) }
  end

  # Reading rule 4: an integer written with a fraction or exponent part is taken only up to 2^53
  # in magnitude, in nested messages, lists, maps and oneofs too; written as an integer it is exact
  # to the field's range.
  def test_an_integer_written_as_a_float_is_taken_only_up_to_2_53
    composite = Bridge::Interop::V1::Composite
    { "9007199254740992.0" => 2**53, "-9.007199254740992e15" => -2**53, "9007199254740993" => 2**53 + 1,
      "-9223372036854775808" => -2**63 }.each do |text, n|
      message = Codec.decode(composite, %({"inner": {"value": #{text}}, "items": [{"value": #{text}}],
                                          "by_name": {"k": {"value": #{text}}}, "number": #{text}}), :json)
      assert_equal [n, n, n, n], [message.inner.value, message.items[0].value, message.by_name["k"].value, message.number], text
    end
    ['{"inner": {"value": 9007199254740994.0}}', '{"items": [{"value": -1e16}]}',
     '{"by_name": {"k": {"value": 1.8446744073709552e19}}}', '{"number": 9.2233720368547758e+18}',
     '{"scalars": {"f_sint64": 1e300}}', '{"scalars": {"f_uint64": 18446744073709551615.0}}'].each do |text|
      error = assert_raises(Bridge::DecodeError, text) { Codec.decode(composite, text, :json) }
      assert_includes error.message, "exact only up to 2^53", text
    end
    scalars = Codec.decode(Bridge::Interop::V1::Scalars, '{"f_uint64": 18446744073709551615, "f_int64": "-9223372036854775808"}', :json)
    assert_equal [2**64 - 1, -2**63], [scalars.f_uint64, scalars.f_int64]
  end

  # Section 8.1: zero bytes are no bare JSON message unless its type has no fields.
  def test_zero_bytes_are_the_empty_message_only_for_a_type_without_fields
    [Bridge::Interop::V1::Composite, Bridge::Interop::V1::Inner, Google::Protobuf::Timestamp].each do |klass|
      error = assert_raises(Bridge::DecodeError) { Codec.decode(klass, "".b, :json) }
      assert_equal "an empty payload is not a bare JSON #{klass.descriptor.name} (an empty message is written {})", error.message
    end
    [Bridge::Interop::V1::Empty, Google::Protobuf::Empty].each do |klass|
      assert_equal klass.new, Codec.decode(klass, "".b, :json)
    end
  end

  def test_hostile_depth_is_refused_without_deep_recursion
    text = ("[" * 100_000) + ("]" * 100_000)
    assert_raises(Bridge::DecodeError) { Codec.decode(Bridge::Interop::V1::Composite, text, :json) }
    text = ('{"child":' * 5000) + "{}" + ("}" * 5000)
    assert_raises(Bridge::DecodeError) { Codec.decode(Bridge::Interop::V1::Composite, text, :json) }
  end
end

# Well-known types keep their canonical JSON form (section 8.2, writing rule 8), read and written
# by upb inside the bare walk.
class TestBareJsonWellKnownTypes < Minitest::Test
  require "google/protobuf/well_known_types"
  require "google/protobuf/struct_pb"
  require "google/protobuf/timestamp_pb"
  require "google/protobuf/duration_pb"
  require "google/protobuf/wrappers_pb"

  Google::Protobuf::DescriptorPool.generated_pool.build do
    add_file("bridge/runtime/ruby/test_well_known.proto", syntax: :proto3) do
      add_message "bridge.runtime.ruby.test.WellKnown" do
        optional :at, :message, 1, "google.protobuf.Timestamp"
        optional :value, :message, 2, "google.protobuf.Value"
        optional :fields, :message, 3, "google.protobuf.Struct"
        optional :count, :message, 4, "google.protobuf.Int64Value"
        repeated :values, :message, 5, "google.protobuf.Value"
        optional :took, :message, 6, "google.protobuf.Duration"
        optional :plain, :int64, 7
      end
    end
  end
  WellKnown = Google::Protobuf::DescriptorPool.generated_pool.lookup("bridge.runtime.ruby.test.WellKnown").msgclass

  def test_read_and_written_in_canonical_form
    text = '{"at": "1970-01-01T00:00:01.500Z", "value": null, "fields": {"a": [1, "x", null]},
             "count": 5, "values": [true, null], "took": "1.5s", "plain": "7"}'
    message = Bridge::Codec.decode(WellKnown, text, :json)
    assert_equal [1, 500_000_000], [message.at.seconds, message.at.nanos]
    assert_equal :NULL_VALUE, message.value.null_value, "null is a google.protobuf.Value's NULL_VALUE"
    assert_equal({ "a" => [1.0, "x", nil] }, message.fields.to_h)
    assert_equal 5, message.count.value
    assert_equal [true, :NULL_VALUE], [message.values[0].bool_value, message.values[1].null_value]
    assert_equal 7, message.plain
    written = JSON.parse(Bridge::Codec.encode(message, :json))
    assert_equal({ "at" => "1970-01-01T00:00:01.500Z", "value" => nil, "fields" => { "a" => [1.0, "x", nil] },
                   "count" => "5", "values" => [true, nil], "took" => "1.500s", "plain" => 7 }, written)
    assert_equal({ "values" => [], "plain" => 0 }, JSON.parse(Bridge::Codec.encode(WellKnown.new, :json)))
  end

  # A wrapper's value reads as canonical: reading rule 4's 2^53 limit is for plain fields.
  def test_a_wrapper_takes_an_integer_written_as_a_float_beyond_2_53
    assert_equal 2**54, Bridge::Codec.decode(WellKnown, '{"count": 18014398509481984.0}', :json).count.value
    assert_raises(Bridge::DecodeError) { Bridge::Codec.decode(WellKnown, '{"plain": 18014398509481984.0}', :json) }
  end

  def test_malformed_well_known_values_are_decoding_errors
    ['{"at": "yesterday"}', '{"took": 5}', '{"fields": [1]}', '{"count": "x"}'].each do |text|
      assert_raises(Bridge::DecodeError, text) { Bridge::Codec.decode(WellKnown, text, :json) }
    end
  end
end
