# frozen_string_literal: true

require_relative "test_helper"
require "json"
require "logger"

# Bare methods (wire contract section 8.4) without a server: the job is the request alone in the
# method's encoding, the reply goes out alone (no frame, no attempt marker), errors in the bare
# form of section 8.3. And an enveloped method given a job that is no envelope says `bare`.
class TestBareDispatch < Minitest::Test
  V1 = Bridge::Interop::V1
  Codec = Bridge::Codec

  class Recorder
    attr_reader :packets

    def initialize = @packets = []
    def generation = 1
    def send_packet(type, *args, hold: false, generation: nil) = @packets << [type, *args]
  end

  class BareHandler < V1::Bare::Service
    def echo_json(request, _context) = request
    def echo_scalars_json(request, _context) = request
    def echo_msgpack(request, _context) = request
    def echo_protobuf(request, _context) = request
    def echo_raw(request, _context) = request
    def reverse(request, _context) = V1::RawText.new(text: request.text.reverse)

    def progress_json(request, context)
      context.warning(request.warning) unless request.warning.empty?
      (1..request.steps).each { |step| context.progress(step, request.steps) }
      V1::ProgressReply.new(steps_done: request.steps)
    end

    def raise_json(request, context)
      context.fail! if request.fail
      raise ArgumentError, request.message if request.native

      raise Bridge::Error.new(request.code, request.message)
    end
    alias raise_msgpack raise_json

    def who_am_i_json(_request, context)
      V1::WhoAmIReply.new(language: "ruby", metadata: context.metadata, deadline_ms: context.deadline_ms)
    end
  end

  class Enveloped < V1::Interop::Service
    def echo(request, _context) = request
  end

  def setup
    @dispatcher = Bridge::Dispatcher.new(max_request_bytes: 4096, logger: Logger.new(nil))
    @dispatcher.add_service(BareHandler.new).add_service(Enveloped.new)
  end

  def perform(function, payload)
    recorder = Recorder.new
    @dispatcher.perform(Bridge::Job.new(recorder, "H:1", function, "", payload.b))
    recorder.packets
  end

  # The only packet of a job that answers at once: [type, payload].
  def answer(function, payload)
    packets = perform(function, payload)
    assert_equal 1, packets.size, packets.inspect
    type, handle, data = packets[0]
    assert_equal "H:1", handle
    [type, data]
  end

  def completed(function, payload)
    type, data = answer(function, payload)
    assert_equal :WORK_COMPLETE, type, data
    data
  end

  def json_error(function, payload)
    type, data = answer(function, payload)
    assert_equal :WORK_EXCEPTION, type
    JSON.parse(data)
  end

  COMPOSITE = V1::Composite.new(text: "héllo", numbers: [1, -2], labels: { -3 => "m" },
                                inner: V1::Inner.new(name: "i", value: 2**40))

  def test_json_job_and_reply_are_the_bare_json_mapping
    reply = JSON.parse(completed("interop_bare_echo_json", Codec.encode(COMPOSITE, :json)))
    assert_equal "héllo", reply["text"]
    assert_equal({ "name" => "i", "value" => 2**40 }, reply["inner"], "proto names, 64-bit integers as numbers")
    assert_equal [], reply["tags"], "fields without presence are written"
    assert_equal COMPOSITE, Codec.decode(V1::Composite, completed("interop_bare_echo_json", JSON.generate(reply)), :json)
  end

  def test_what_a_php_worker_sends_is_read
    reply = completed("interop_bare_scalars_json", '{"f_bool": 1, "fInt64": "7", "f_enum": 2, "f_string": null}')
    assert_equal({ "f_bool" => true, "f_int64" => 7, "f_enum" => "COLOR_GREEN" },
                 JSON.parse(reply).slice("f_bool", "f_int64", "f_enum"))
    assert_equal V1::Composite.new, Codec.decode(V1::Composite, completed("interop_bare_echo_json", "[]"), :json), "[] is the empty message"
  end

  def test_msgpack_and_protobuf_jobs_are_the_message_alone
    %i[msgpack protobuf].each do |encoding|
      body = Codec.encode(COMPOSITE, encoding)
      reply = completed("interop_bare_echo_#{encoding}", body)
      assert_equal body, reply, "#{encoding}: the reply is the encoded message, no frame"
      refute_equal 0xB7, reply.getbyte(0)
    end
  end

  def test_raw_jobs_are_the_field_bytes
    bytes = "\x00\xffpng\n".b
    assert_equal bytes, completed("interop_bare_echo_raw", bytes)
    assert_equal "", completed("interop_bare_echo_raw", "")
    assert_equal "é✓ba".b, completed("interop_bare_reverse", "ab✓é".b)
  end

  def test_empty_payload_is_the_empty_message_in_protobuf_and_for_a_type_without_fields
    assert_equal "", completed("interop_bare_echo_protobuf", "")
    assert_equal({ "language" => "ruby", "metadata" => {}, "deadline_ms" => 0 }, JSON.parse(completed("interop_bare_whoami_json", "")))
  end

  # Section 8.1: zero bytes of bare JSON or MSGPACK for a type with fields are what a PHP
  # json_encode() that failed or a handler that forgot to return sends: INVALID_ARGUMENT.
  def test_empty_json_or_msgpack_payload_of_a_type_with_fields_is_invalid_argument
    error = json_error("interop_bare_echo_json", "")
    assert_equal [3, "INVALID_ARGUMENT"], error.values_at("code", "status")
    assert_includes error["message"], "an empty payload is not a bare JSON bridge.interop.v1.Composite"
    assert_equal :WORK_EXCEPTION, answer("interop_bare_scalars_json", "")[0]
    type, text = answer("interop_bare_echo_msgpack", "")
    assert_equal :WORK_EXCEPTION, type
    assert_includes text, "an empty payload is not a bare MSGPACK bridge.interop.v1.Composite"
  end

  def test_progress_and_warning_go_without_attempt_markers
    packets = perform("interop_bare_progress_json", '{"steps": 2, "warning": "careful"}')
    assert_equal [[:WORK_WARNING, "H:1", "careful"], [:WORK_STATUS, "H:1", "1", "2"], [:WORK_STATUS, "H:1", "2", "2"]],
                 packets[0, 3]
    assert_equal [:WORK_COMPLETE, "H:1"], packets[3][0, 2]
    assert_equal({ "steps_done" => 2 }, JSON.parse(packets[3][2]))
    assert_equal 4, packets.size
  end

  def test_no_metadata_and_no_deadline
    assert_equal({ "language" => "ruby", "metadata" => {}, "deadline_ms" => 0 },
                 JSON.parse(completed("interop_bare_whoami_json", "{}")))
  end

  def test_json_errors_are_code_status_message_objects
    error = json_error("interop_bare_raise_json", '{"code": 5, "message": "no user ✗"}')
    assert_equal({ "code" => 5, "status" => "NOT_FOUND", "message" => "no user ✗" }, error)
    error = json_error("interop_bare_raise_json", '{"native": true, "message": "bad"}')
    assert_equal({ "code" => 2, "status" => "UNKNOWN", "message" => "bad" }, error)
  end

  def test_other_encodings_send_the_message_text_alone
    body = Codec.encode(V1::RaiseRequest.new(code: 9, message: "not yet ✗"), :msgpack)
    assert_equal [:WORK_EXCEPTION, "not yet ✗".b], answer("interop_bare_raise_msgpack", body)
  end

  def test_fail_is_work_fail
    assert_equal [[:WORK_FAIL, "H:1"]], perform("interop_bare_raise_json", '{"fail": true}')
    assert_equal [[:WORK_FAIL, "H:1"]], perform("interop_bare_raise_msgpack", "\x81\xa4fail\xc3")
  end

  def test_undecodable_jobs_are_invalid_argument
    error = json_error("interop_bare_echo_json", '{"no_such_field": 1}')
    assert_equal [3, "INVALID_ARGUMENT"], error.values_at("code", "status")
    assert_match(/no_such_field/, error["message"])
    assert_equal 3, json_error("interop_bare_echo_json", "not json")["code"]
    type, text = answer("interop_bare_reverse", "\xff".b)
    assert_equal :WORK_EXCEPTION, type
    assert_match(/not UTF-8/, text)
    type, text = answer("interop_bare_echo_msgpack", "\x91\x01")
    assert_equal :WORK_EXCEPTION, type
    assert_match(/must be a msgpack map/, text)
  end

  def test_oversized_and_unimplemented
    error = json_error("interop_bare_echo_json", "x" * 5000)
    assert_equal [8, "RESOURCE_EXHAUSTED"], error.values_at("code", "status")
    error = json_error("interop_bare_not_implemented_json", "{}")
    assert_equal [12, "UNIMPLEMENTED"], error.values_at("code", "status")
  end

  def test_a_reply_of_the_wrong_type_is_internal_in_the_bare_form
    handler = Class.new(V1::Bare::Service) { def echo_json(_request, _context) = "not a message" }
    @dispatcher = Bridge::Dispatcher.new(logger: Logger.new(nil)).add_service(handler.new)
    assert_equal [13, "INTERNAL"], json_error("interop_bare_echo_json", "{}").values_at("code", "status")
  end

  def test_an_enveloped_method_given_a_bare_job_names_bare
    ["{\"text\": \"hi\"}", Codec.encode(COMPOSITE, :msgpack), "hello", "[]"].each do |payload|
      type, data = answer("bridge.interop.v1.Interop.Echo", payload)
      assert_equal :WORK_EXCEPTION, type
      error = Bridge::V1::Error.decode(data)
      assert_includes %i[INVALID_ARGUMENT FAILED_PRECONDITION], error.code, payload.inspect
      assert_match(/not a bridge envelope.*`bare: true`/, error.message, payload.inspect)
    end
    error = Bridge::V1::Error.decode(answer("bridge.interop.v1.Interop.Echo", '{"text": "hi"}')[1])
    assert_equal :INVALID_ARGUMENT, error.code
  end

  def test_service_declarations_are_checked
    klass = Class.new { include Bridge::Service }
    klass.service_name = "t.S"
    assert_raises(ArgumentError) { klass.rpc(:A, V1::Composite, V1::Composite, bare: true, encoding: :raw) }
    assert_raises(ArgumentError) { klass.rpc(:B, V1::Blob, V1::Blob, encoding: :json) }
    assert_raises(ArgumentError) { klass.rpc(:C, V1::Blob, klass.stream(V1::Blob), bare: true, encoding: :json) }
    assert_raises(ArgumentError) { klass.rpc(:D, V1::Blob, V1::Blob, bare: true, encoding: :xml) }
    klass.rpc(:E, V1::RawBytes, V1::RawText, bare: true, encoding: "RAW")
    assert_equal [true, :raw], klass.rpcs[:E].to_h.values_at(:bare, :encoding)
    klass.rpc(:F, V1::Blob, V1::Blob, bare: true)
    assert_equal :protobuf, klass.rpcs[:F].encoding
  end
end
