# frozen_string_literal: true

require_relative "test_helper"
require "logger"
require "msgpack"
require "google/protobuf/empty_pb"

# A bare MSGPACK payload names only its type's fields, at every level (wire contract section 8.1):
# an unknown key is a decoding error, where an enveloped MSGPACK body (section 5) skips it.
class TestBareMsgpackStrict < Minitest::Test
  V1 = Bridge::Interop::V1
  Msgpack = Bridge::Codec::Msgpack

  class Recorder
    attr_reader :packets

    def initialize = @packets = []
    def generation = 1
    def send_packet(type, *args, hold: false, generation: nil) = @packets << [type, *args]
  end

  class BareEcho < V1::Bare::Service
    def echo_msgpack(request, _context) = request
  end

  class Enveloped < V1::Interop::Service
    def echo(request, _context) = request
  end

  # An unknown key at each level of a Composite, and where it is.
  UNKNOWN = {
    "top level" => { "text" => "a", "zz" => 1 },
    "nested message" => { "inner" => { "name" => "n", "zz" => [1, { "x" => nil }] } },
    "nested twice" => { "child" => { "child" => { "inner" => { "value" => 1, "zz" => nil } } } },
    "map value message" => { "by_name" => { "k" => { "name" => "n", "zz" => "x" } } },
    "repeated message" => { "items" => [{ "name" => "ok" }, { "zz" => 1.5 }] },
    "oneof message" => { "nested" => { "zz" => true } }
  }.freeze

  def pack(object) = MessagePack.pack(object).b

  def strict(bytes) = Msgpack.decode(V1::Composite, bytes, unknown_keys: false)

  def test_bare_decoding_refuses_unknown_keys_at_every_level
    UNKNOWN.each do |where, object|
      error = assert_raises(Bridge::DecodeError, where) { strict(pack(object)) }
      assert_match(/unknown key "zz".*section 8\.1/, error.message, where)
    end
  end

  def test_enveloped_decoding_still_skips_them
    assert_equal V1::Composite.new(text: "a"), Msgpack.decode(V1::Composite, pack(UNKNOWN["top level"]))
    assert_equal V1::Composite.new(items: [V1::Inner.new(name: "ok"), V1::Inner.new]),
                 Msgpack.decode(V1::Composite, pack(UNKNOWN["repeated message"]))
    assert_equal V1::Composite.new(by_name: { "k" => V1::Inner.new(name: "n") }),
                 Bridge::Codec.decode(V1::Composite, pack(UNKNOWN["map value message"]), :msgpack)
  end

  def test_a_non_string_key_is_refused_in_both_forms
    objects = [{ 1 => "x" }, { "inner" => { 2 => 3 } }, { "items" => [{ nil => 1 }] },
               { "by_name" => { "k" => { true => 1 } } }]
    objects.each do |object|
      bytes = pack(object)
      [true, false].each do |unknown_keys|
        error = assert_raises(Bridge::DecodeError, object.inspect) do
          Msgpack.decode(V1::Composite, bytes, unknown_keys: unknown_keys)
        end
        assert_match(/is not a field name \(str\)/, error.message)
      end
    end
  end

  def test_known_keys_everywhere_still_decode
    message = V1::Composite.new(text: "t", inner: V1::Inner.new(name: "i", value: -1), items: [V1::Inner.new(name: "x")],
                                by_name: { "k" => V1::Inner.new(value: 2) }, labels: { 7 => "s" },
                                child: V1::Composite.new(nested: V1::Inner.new(name: "deep")))
    assert_equal message, strict(Msgpack.encode(message))
    assert_equal V1::Composite.new(text: "a"), strict(pack({ "text" => "a", "inner" => nil })), "nil is still unset"
  end

  # Section 8.1: bare, zero bytes are what a failed encoder or a forgotten return sends; only a type
  # without fields reads them. An enveloped body (section 5) and the empty map are unchanged.
  def test_zero_bytes_are_the_empty_message_only_for_a_type_without_fields
    [V1::Composite, V1::Inner, V1::WhoAmIReply].each do |klass|
      error = assert_raises(Bridge::DecodeError, klass.name) { Msgpack.decode(klass, "".b, unknown_keys: false) }
      assert_equal "an empty payload is not a bare MSGPACK #{klass.descriptor.name} (an empty message is written 0x80)",
                   error.message
      assert_equal klass.new, Msgpack.decode(klass, "".b), "enveloped: every field unset"
      assert_equal klass.new, Msgpack.decode(klass, "\x80".b, unknown_keys: false)
    end
    [V1::Empty, Google::Protobuf::Empty].each do |klass|
      assert_equal klass.new, Msgpack.decode(klass, "".b, unknown_keys: false)
    end
  end

  # A bare MSGPACK rpc whose request type has no fields, as an unchanged PHP client calls it.
  class FieldlessMsgpack
    include Bridge::Service
    self.service_name = "bridge.runtime.ruby.test.Fieldless"
    rpc :WhoAmI, V1::Empty, V1::WhoAmIReply, function_name: "test_bare_whoami_msgpack", bare: true, encoding: :msgpack
  end

  class Fieldless < FieldlessMsgpack
    def who_am_i(_request, _context) = V1::WhoAmIReply.new(language: "ruby")
  end

  def test_a_zero_byte_bare_msgpack_job_runs_only_for_a_type_without_fields
    dispatcher = Bridge::Dispatcher.new(logger: Logger.new(nil))
    dispatcher.add_service(Fieldless.new).add_service(BareEcho.new)
    recorder = Recorder.new
    dispatcher.perform(Bridge::Job.new(recorder, "H:1", "test_bare_whoami_msgpack", "", "".b))
    assert_equal [[:WORK_COMPLETE, "H:1", pack({ "language" => "ruby" })]], recorder.packets
    packets = perform("interop_bare_echo_msgpack", "")
    assert_equal 1, packets.size, packets.inspect
    assert_equal [:WORK_EXCEPTION, "H:1"], packets[0][0, 2]
    assert_equal "request (bare msgpack): an empty payload is not a bare MSGPACK bridge.interop.v1.Composite " \
                 "(an empty message is written 0x80)", packets[0][2].force_encoding(Encoding::UTF_8)
  end

  def test_map_keys_of_a_map_field_are_not_field_names
    # labels / blobs keys are the map's own keys, never checked against a message's fields
    # (ruby-msgpack writes a binary String as bin).
    assert_equal V1::Composite.new(labels: { 5 => "five" }, blobs: { "zz" => "b".b }),
                 strict(pack({ "labels" => { 5 => "five" }, "blobs" => { "zz" => "b".b } }))
  end

  def test_the_deep_limit_is_unchanged
    deep = "\x81\xa5child".b * 100 + "\x80".b
    assert_equal 100, depth(strict(deep))
    assert_raises(Bridge::DecodeError) { strict("\x81\xa5child".b * 101 + "\x80".b) }
  end

  def depth(message)
    n = 0
    n += 1 while (message = message.child)
    n
  end

  def perform(function, payload)
    dispatcher = Bridge::Dispatcher.new(logger: Logger.new(nil))
    dispatcher.add_service(BareEcho.new).add_service(Enveloped.new)
    recorder = Recorder.new
    dispatcher.perform(Bridge::Job.new(recorder, "H:1", function, "", payload.b))
    recorder.packets
  end

  def test_a_bare_msgpack_job_with_an_unknown_key_is_invalid_argument_in_plain_text
    # The interop test's hostile job: {"text": "a", "zz": 1}.
    packets = perform("interop_bare_echo_msgpack", ["82a474657874a161a27a7a01"].pack("H*"))
    assert_equal 1, packets.size, packets.inspect
    type, handle, text = packets[0]
    assert_equal [:WORK_EXCEPTION, "H:1"], [type, handle]
    assert_match(/\Arequest \(bare msgpack\): .*unknown key "zz"/, text.force_encoding(Encoding::UTF_8))
    UNKNOWN.each do |where, object|
      assert_equal :WORK_EXCEPTION, perform("interop_bare_echo_msgpack", pack(object))[0][0], where
    end
    assert_equal [[:WORK_COMPLETE, "H:1", pack({ "text" => "a" })]], perform("interop_bare_echo_msgpack", pack({ "text" => "a" }))
  end

  def test_an_enveloped_msgpack_job_with_unknown_keys_still_runs
    UNKNOWN.each do |where, object|
      request = Bridge::V1::Request.new(version: 1, encoding: :MSGPACK, body: pack(object))
      packets = perform("bridge.interop.v1.Interop.Echo", Bridge::V1::Request.encode(request))
      type, _handle, payload = packets.last
      assert_equal :WORK_COMPLETE, type, where
      frame = Bridge::Frame.parse(payload)
      assert_equal Msgpack.decode(V1::Composite, pack(object)), Msgpack.decode(V1::Composite, frame.body), where
    end
  end
end
