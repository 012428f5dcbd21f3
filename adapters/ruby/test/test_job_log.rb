# frozen_string_literal: true

require_relative "test_helper"
require "json"
require "logger"
require "stringio"

# The per-job log lines and trace context of docs/workers.md, on the dispatcher (no server).
class TestJobLog < Minitest::Test
  V1 = Bridge::Interop::V1
  TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
  TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

  class Recorder
    attr_reader :packets

    def initialize = @packets = []
    def generation = 1
    def send_packet(type, *args, hold: false, generation: nil) = @packets << [type, *args]
  end

  class Handler < V1::Interop::Service
    def who_am_i(_request, context)
      V1::WhoAmIReply.new(language: [context.traceparent, context.trace_id, context.parent_id,
                                     context.tracestate].inspect, metadata: context.metadata)
    end

    def raise_rpc(request, context)
      context.fail! if request.fail
      raise ArgumentError, request.message if request.native

      raise Bridge::Error.new(request.code, request.message)
    end
  end

  def setup
    @log = StringIO.new
    @dispatcher = Bridge::Dispatcher.new(logger: Logger.new(@log, level: Logger::DEBUG)).add_service(Handler.new)
  end

  def perform(method, body = "".b, metadata: {}, encoding: :PROTOBUF)
    payload = Bridge::V1::Request.encode(Bridge::V1::Request.new(version: 1, encoding: encoding, body: body,
                                                                 metadata: metadata))
    recorder = Recorder.new
    @dispatcher.perform(Bridge::Job.new(recorder, "H:host:42", "bridge.interop.v1.Interop.#{method}", "", payload))
    [recorder.packets, payload.bytesize]
  end

  def lines = @log.string.lines.map(&:chomp)

  def seen_by_handler(packets)
    V1::WhoAmIReply.decode(Bridge::Frame.parse(packets.last[2]).body).language
  end

  def test_one_debug_line_per_job_with_its_trace_id
    packets, size = perform("WhoAmI", metadata: { "traceparent" => TRACEPARENT, "tracestate" => "k=v" })
    assert_equal [TRACEPARENT, TRACE_ID, "00f067aa0ba902b7", "k=v"].inspect, seen_by_handler(packets)
    assert_equal 1, lines.size, @log.string
    assert_match(/\AD, .* DEBUG -- : job function=bridge\.interop\.v1\.Interop\.WhoAmI handle=H:host:42 #{""
                 }encoding=protobuf bytes=#{size} seconds=\d+\.\d{6} outcome=OK trace_id=#{TRACE_ID}\z/, lines[0])
  end

  def test_an_invalid_traceparent_is_ignored
    [
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", # version
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01", # trace id all zero
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", # parent id all zero
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", # upper case
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", # short
      "#{TRACEPARENT}\n"
    ].each do |bad|
      @log.truncate(0)
      @log.rewind
      packets, = perform("WhoAmI", metadata: { "traceparent" => bad, "tracestate" => "k=v" })
      assert_equal [nil, nil, nil, nil].inspect, seen_by_handler(packets), bad
      assert_equal :WORK_COMPLETE, packets.last[0]
      refute_includes @log.string, "trace_id=", bad
    end
  end

  def test_every_error_answer_is_one_warning_line_with_its_message
    cases = {
      V1::RaiseRequest.new(code: 5, message: "no such user") => ["NOT_FOUND", "\"no such user\""],
      V1::RaiseRequest.new(native: true, message: "boom") => ["UNKNOWN", "\"boom\""],
      V1::RaiseRequest.new(fail: true) => ["WORK_FAIL", nil]
    }
    cases.each do |request, (outcome, message)|
      @log.truncate(0)
      @log.rewind
      perform("Raise", V1::RaiseRequest.encode(request), metadata: { "traceparent" => TRACEPARENT })
      assert_equal 1, lines.size, @log.string
      expected = "job failed function=bridge.interop.v1.Interop.Raise handle=H:host:42 encoding=protobuf"
      assert_includes lines[0], expected
      assert_match(/\AW, .* WARN -- : job failed .* outcome=#{outcome} trace_id=#{TRACE_ID}/, lines[0])
      if message
        assert lines[0].end_with?(" message=#{message}"), lines[0]
      else
        refute_includes lines[0], "message="
      end
    end
  end

  def test_runtime_refusals_are_warnings_too_and_name_the_encoding
    @log.truncate(0)
    perform("Echo", "\xFF\xFF".b, encoding: :MSGPACK)
    assert_match(/WARN -- : job failed function=\S+Echo handle=H:host:42 encoding=msgpack bytes=\d+ .*#{""
                 }outcome=INVALID_ARGUMENT message="request body: /, lines.last)
    recorder = Recorder.new
    @dispatcher.perform(Bridge::Job.new(recorder, "H:host:43", "bridge.interop.v1.Interop.Echo", "", "\xFF".b))
    assert_match(/job failed .*handle=H:host:43 encoding=protobuf bytes=1 .*outcome=INVALID_ARGUMENT message="the job/,
                 lines.last)
  end

  def test_the_message_is_escaped_and_cut_at_200_characters
    hostile = "line one\nW, [2026] WARN -- : forged \u202E\e[2J#{"x" * 300}"
    perform("Raise", V1::RaiseRequest.encode(V1::RaiseRequest.new(code: 3, message: hostile)))
    assert_equal 1, lines.size, @log.string
    message = lines[0][/ message=(.*)\z/, 1]
    # escaped as a JSON string is (docs/workers.md), "..." marking the cut
    assert message.start_with?('"line one\\nW, [2026] WARN -- : forged \\u202e\\u001b[2J'), message
    assert_equal "#{hostile[0, 200]}...", JSON.parse(message)
    ["\n", "\u202E", "\e"].each { |c| refute_includes lines[0], c }
  end

  def test_quote_is_json_string_style
    q = ->(text) { Bridge::Logging.quote(text) }
    assert_equal '"a\\"b\\\\c\\r\\n\\t\\u0007\\u001b\\u0085\\u2028\\u202e é"',
                 q.call("a\"b\\c\r\n\t\a\e\u0085\u2028\u202e \u00e9")
    assert_equal '"\\xffz"', q.call("\xFFz".b), "a byte that is not UTF-8"
    assert_equal "\"#{"y" * 200}\"", q.call("y" * 200)
    assert_equal "\"#{"y" * 200}...\"", q.call("y" * 201)
    assert_equal "a\"\\\n\u0001\u2028", JSON.parse(q.call("a\"\\\n\u0001\u2028"))
  end

  def test_ok_jobs_are_not_logged_at_info
    @dispatcher = Bridge::Dispatcher.new(logger: Logger.new(@log, level: Logger::INFO)).add_service(Handler.new)
    perform("WhoAmI")
    assert_empty @log.string
    perform("Raise", V1::RaiseRequest.encode(V1::RaiseRequest.new(code: 3, message: "bad")))
    assert_equal 1, lines.size
  end
end
