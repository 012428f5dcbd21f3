# frozen_string_literal: true

require_relative "test_helper"
require "logger"

# The job flow of wire-contract section 2 and the Error envelope, without a server: the job's
# packets go to a recorder instead of a socket.
class TestDispatcher < Minitest::Test
  V1 = Bridge::Interop::V1
  Code = Bridge::V1::Code

  # Stands in for Gearman::Connection#send_packet.
  class Recorder
    attr_reader :packets

    def initialize = @packets = []
    def generation = 1
    def send_packet(type, *args, hold: false, generation: nil) = @packets << [type, *args]
  end

  class Handler < V1::Interop::Service
    def echo(request, _context) = request
    def echo_blob(request, _context) = { data: request.data.reverse, text: request.text.upcase }
    def nothing(_request, _context) = "not a message"

    def stream(request, context)
      context.progress(0, request.count)
      request.count.times { |i| yield V1::StreamItem.new(index: i) }
    end

    def progress(request, _context) = (1..request.steps).map { |i| V1::ProgressReply.new(steps_done: i) }

    def raise_rpc(request, context)
      context.fail! if request.fail
      raise ArgumentError, request.message if request.native

      raise Bridge::Error.new(request.code, request.message, details: { "k" => "v" })
    end

    def who_am_i(_request, context)
      V1::WhoAmIReply.new(language: "ruby", metadata: context.metadata, deadline_ms: context.deadline_ms)
    end
  end

  # Reports progress and a warning before its reply.
  class Reporter < V1::Interop::Service
    def progress(request, context)
      context.warning("careful")
      (1..request.steps).each { |i| context.progress(i, request.steps) }
      V1::ProgressReply.new(steps_done: request.steps)
    end
  end

  # Calls emit from a unary rpc.
  class Emitter < V1::Interop::Service
    def echo_blob(request, context)
      context.emit(request)
      request
    end
  end

  # Streams by returning an Enumerable instead of yielding.
  class Returner < V1::Interop::Service
    def stream(request, _context) = Array.new(request.count) { |i| V1::StreamItem.new(index: i) }
  end

  def setup
    @dispatcher = Bridge::Dispatcher.new(max_request_bytes: 1024, logger: Logger.new(nil))
    @dispatcher.add_service(Handler.new)
  end

  def request(body = "".b, version: 1, encoding: :PROTOBUF, deadline_ms: 0, metadata: {})
    Bridge::V1::Request.encode(Bridge::V1::Request.new(version: version, encoding: encoding, body: body,
                                                       deadline_ms: deadline_ms, metadata: metadata))
  end

  def perform(method, payload, dispatcher: @dispatcher)
    recorder = Recorder.new
    dispatcher.perform(Bridge::Job.new(recorder, "H:1", "bridge.interop.v1.Interop.#{method}", "", payload))
    recorder.packets
  end

  def error_of(packets)
    assert_equal 1, packets.count { |p| %i[WORK_COMPLETE WORK_EXCEPTION WORK_FAIL].include?(p[0]) }
    type, handle, payload = packets.last
    assert_equal :WORK_EXCEPTION, type
    assert_equal "H:1", handle
    Bridge::V1::Error.decode(payload)
  end

  def frame(payload) = Bridge::Frame.parse(payload)

  def test_unary_reply_in_each_encoding_is_one_reply_frame
    message = V1::Composite.new(text: "héllo", numbers: [1, -2])
    attempts = %i[protobuf msgpack].map do |encoding|
      body = Bridge::Codec.encode(message, encoding)
      packets = perform("Echo", request(body, encoding: encoding.upcase))
      assert_equal [[:WORK_COMPLETE, "H:1"]], packets.map { |p| p[0, 2] }
      reply = frame(packets[0][2])
      assert_equal [Bridge::Frame::REPLY, encoding, 0x8dc965d8, 0, body],
                   [reply.kind, reply.encoding, reply.tag, reply.sequence, reply.body]
      assert_equal "\xB7".b, packets[0][2][0]
      refute_equal 0, reply.attempt
      reply.attempt
    end
    refute_equal attempts[0], attempts[1], "each run of a job draws its own attempt id"
  end

  def test_type_tag_is_zlib_crc32_of_the_reply_type_name
    assert_equal 0x8dc965d8, Bridge::Frame.tag("bridge.interop.v1.Composite")
    reply = frame(perform("WhoAmI", request).last[2])
    assert_equal Zlib.crc32("bridge.interop.v1.WhoAmIReply"), reply.tag
  end

  def test_progress_before_any_data_follows_an_attempt_marker
    packets = perform("Progress", request(V1::ProgressRequest.encode(V1::ProgressRequest.new(steps: 2))),
                      dispatcher: Bridge::Dispatcher.new(logger: Logger.new(nil)).add_service(Reporter.new))
    assert_equal %i[WORK_DATA WORK_WARNING WORK_STATUS WORK_STATUS WORK_COMPLETE], packets.map(&:first)
    marker = frame(packets[0][2])
    reply = frame(packets[4][2])
    assert_equal [Bridge::Frame::MARKER, 0, ""], [marker.kind, marker.sequence, marker.body]
    assert_equal [Bridge::Frame::REPLY, marker.attempt], [reply.kind, reply.attempt]
    assert_equal [[:WORK_STATUS, "H:1", "1", "2"], [:WORK_STATUS, "H:1", "2", "2"]], packets[2..3]
    assert_equal "careful", packets[1][2]
  end

  def test_cancelled_once_the_deadline_has_passed
    job = Bridge::Job.new(Recorder.new, "H:1", "f", "", "")
    now = Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)
    context = ->(deadline) { Bridge::Context.new(job, metadata: {}, deadline_ms: deadline, encoding: :protobuf) }
    refute context.call(0).cancelled?, "no deadline: never cancelled"
    refute context.call(now + 60_000).cancelled?
    assert context.call(now - 1).cancelled?
    short = context.call(Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond) + 50)
    refute short.cancelled?
    sleep 0.06
    assert short.cancelled?
  end

  def test_emit_on_a_unary_rpc_is_an_internal_error
    error = error_of(perform("EchoBlob", request(V1::Blob.encode(V1::Blob.new)),
                             dispatcher: Bridge::Dispatcher.new(logger: Logger.new(nil)).add_service(Emitter.new)))
    assert_equal :INTERNAL, error.code
    assert_match(/not a server-streaming rpc/, error.message)
  end

  def test_a_hash_reply_becomes_the_reply_message
    body = Bridge::Codec.encode(V1::Blob.new(data: "ab".b, text: "x"), :msgpack)
    reply = frame(perform("EchoBlob", request(body, encoding: :MSGPACK)).last[2]).body
    assert_equal V1::Blob.new(data: "ba".b, text: "X"), Bridge::Codec.decode(V1::Blob, reply, :msgpack)
  end

  def test_streaming_sends_item_frames_in_order_then_a_stream_end_with_the_count
    packets = perform("Stream", request(V1::StreamRequest.encode(V1::StreamRequest.new(count: 3))))
    assert_equal %i[WORK_DATA WORK_STATUS WORK_DATA WORK_DATA WORK_DATA WORK_COMPLETE], packets.map(&:first)
    marker = frame(packets[0][2])
    assert_equal [Bridge::Frame::MARKER, 0, ""], [marker.kind, marker.sequence, marker.body]
    assert_equal [:WORK_STATUS, "H:1", "0", "3"], packets[1]
    items = packets[2..4].map { |_, _, data| frame(data) }
    assert_equal [[2, 0, 0], [2, 1, 1], [2, 2, 2]], items.map { |f| [f.kind, f.sequence, V1::StreamItem.decode(f.body).index] }
    assert_equal [Bridge::Frame.tag("bridge.interop.v1.StreamItem")], items.map(&:tag).uniq
    last = frame(packets[5][2])
    assert_equal [Bridge::Frame::END_OF_STREAM, 3, ""], [last.kind, last.sequence, last.body]
    assert_equal [marker.attempt], (items + [last]).map(&:attempt).uniq
  end

  def test_streaming_by_returning_an_enumerable
    dispatcher = Bridge::Dispatcher.new(logger: Logger.new(nil)).add_service(Returner.new)
    packets = perform("Stream", request(V1::StreamRequest.encode(V1::StreamRequest.new(count: 2))),
                      dispatcher: dispatcher)
    assert_equal %i[WORK_DATA WORK_DATA WORK_COMPLETE], packets.map(&:first)
  end

  def test_oversized_payload
    error = error_of(perform("Echo", request("x".b * 2000)))
    assert_equal :RESOURCE_EXHAUSTED, error.code
    assert_equal "ResourceExhausted", error.type
    assert_equal "ruby", error.language
  end

  def test_payload_that_is_not_a_request
    assert_equal :INVALID_ARGUMENT, error_of(perform("Echo", "\xff\xff".b)).code
    assert_equal :INVALID_ARGUMENT, error_of(perform("Echo", "\x08\x01\x2a\x05abc".b)).code # truncated body
  end

  def test_a_metadata_entry_with_a_stray_field_is_read_not_a_crash
    # version 1, metadata entry {5: "", key "k", value "v"}: upb 3.21 crashed on such map entries
    # (Codec::MapEntryGuard); the envelope reads its entries as plain messages (RequestView)
    payload = "\x08\x01\x1a\x08\x2a\x00\x0a\x01k\x12\x01v\x1a\x06\x0a\x01k\x12\x01w".b
    who = V1::WhoAmIReply.decode(frame(perform("WhoAmI", payload).last[2]).body)
    assert_equal({ "k" => "w" }, who.metadata.to_h, "the last of repeated keys wins")
  end

  def test_wrong_version
    assert_equal :FAILED_PRECONDITION, error_of(perform("Echo", request(version: 2))).code
    assert_equal :FAILED_PRECONDITION, error_of(perform("Echo", request(version: 0))).code
  end

  def test_unknown_encoding
    assert_equal :INVALID_ARGUMENT, error_of(perform("Echo", request(encoding: 7))).code
  end

  def test_deadline_passed_skips_the_handler
    now = Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)
    error = error_of(perform("Raise", request(V1::RaiseRequest.encode(V1::RaiseRequest.new(native: true)),
                                              deadline_ms: now - 1)))
    assert_equal :DEADLINE_EXCEEDED, error.code
    reply = perform("WhoAmI", request(deadline_ms: now + 60_000, metadata: { "trace" => "t-1" })).last
    who = V1::WhoAmIReply.decode(frame(reply[2]).body)
    assert_equal now + 60_000, who.deadline_ms
    assert_equal({ "trace" => "t-1" }, who.metadata.to_h)
  end

  def test_body_that_does_not_decode
    assert_equal :INVALID_ARGUMENT, error_of(perform("Echo", request("\xff".b))).code
    assert_equal :INVALID_ARGUMENT, error_of(perform("Echo", request("\x91\x01".b, encoding: :MSGPACK))).code
  end

  def test_the_poison_msgpack_job_is_invalid_argument
    poison = ["080120022a0e81a76e756d62657273ddffffffff"].pack("H*")
    error = error_of(perform("Echo", poison))
    assert_equal :INVALID_ARGUMENT, error.code
    assert_match(/4294967295/, error.message)
  end

  def test_an_empty_msgpack_body_is_the_empty_message
    reply = frame(perform("Echo", request("".b, encoding: :MSGPACK)).last[2])
    assert_equal [Bridge::Frame::REPLY, :msgpack, "\x80".b], [reply.kind, reply.encoding, reply.body]
  end

  def test_unimplemented_method_and_unknown_function
    error = error_of(perform("NotImplemented", request))
    assert_equal :UNIMPLEMENTED, error.code
    assert_equal "Unimplemented", error.type
    assert_equal :UNIMPLEMENTED, error_of(perform("NoSuchMethod", request)).code
  end

  def test_bridge_error_keeps_code_message_type_and_details
    body = V1::RaiseRequest.encode(V1::RaiseRequest.new(code: 5, message: "no user ✗"))
    error = error_of(perform("Raise", request(body)))
    assert_equal :NOT_FOUND, error.code
    assert_equal "no user ✗", error.message
    assert_equal "Bridge::Error", error.type
    assert_equal({ "k" => "v" }, error.details.to_h)
    refute_empty error.trace
  end

  def test_native_error_is_unknown_with_its_class_and_message
    body = V1::RaiseRequest.encode(V1::RaiseRequest.new(native: true, message: "bad"))
    error = error_of(perform("Raise", request(body)))
    assert_equal :UNKNOWN, error.code
    assert_equal "ArgumentError", error.type
    assert_equal "bad", error.message
    assert_match(/test_dispatcher\.rb/, error.trace)
  end

  def test_fail_sends_work_fail_only
    body = V1::RaiseRequest.encode(V1::RaiseRequest.new(fail: true))
    assert_equal [[:WORK_FAIL, "H:1"]], perform("Raise", request(body))
  end

  def test_a_reply_of_the_wrong_type_is_internal
    error = error_of(perform("Nothing", request))
    assert_equal :INTERNAL, error.code
    assert_match(/returned String, expected .*Empty/, error.message)
  end

  def test_error_codes_by_name_or_number
    assert_equal 5, Bridge::Error.new(:not_found, "x").code
    assert_equal 5, Bridge::Error.new("NOT_FOUND", "x").code
    assert_equal 12, Bridge::Error.new(12).code
    assert_equal "UNIMPLEMENTED", Bridge::Error.new(12).message
    assert_raises(ArgumentError) { Bridge::Error.new(:nope) }
    assert_raises(ArgumentError) { Bridge::Error.new(:ok) }
    assert_raises(ArgumentError) { Bridge::Error.new(17) }
  end

  def test_rpc_method_names_never_shadow_kernel_methods
    names = V1::Interop::Service.rpcs.values.to_h { |rpc| [rpc.name, rpc.method_name] }
    assert_equal :sleep_rpc, names["Sleep"]
    assert_equal :raise_rpc, names["Raise"]
    assert_equal :who_am_i, names["WhoAmI"]
    assert_equal "interop_legacy_echo", V1::Interop::Service.rpcs[:Legacy].function_name
    assert V1::Interop::Service.rpcs[:Stream].server_streaming
  end

  def test_a_service_is_registered_once
    assert_raises(ArgumentError) { @dispatcher.add_service(Handler.new) }
    assert_raises(ArgumentError) { @dispatcher.add_service(Object.new) }
  end
end
