# frozen_string_literal: true

# The Ruby interop worker: ordinary user code against the generated shim (interop_tests/README.md
# says what each method does). Run with the generated code and the runtime on the load path:
#   ruby -I build/gen -I adapters/ruby/lib interop_worker.rb --servers 127.0.0.1:4730
require "interop/v1/interop_bridge"

V1 = Bridge::Interop::V1

class InteropHandler < V1::Interop::Service
  def echo(request, _context) = request
  def echo_scalars(request, _context) = request
  def echo_blob(request, _context) = request
  def legacy(request, _context) = request

  def nothing(_request, _context) = V1::Empty.new

  def stream(request, _context)
    request.count.times do |i|
      sleep(request.delay_ms / 1000.0) if request.delay_ms.positive?
      yield V1::StreamItem.new(index: i, payload: [i % 256].pack("C") * request.payload_size)
    end
  end
  alias stream_idempotent stream # the same stream, declared IDEMPOTENT in the schema

  def progress(request, context)
    context.warning(request.warning) unless request.warning.empty?
    (1..request.steps).each { |step| context.progress(step, request.steps) }
    V1::ProgressReply.new(steps_done: request.steps)
  end

  def raise_rpc(request, context)
    context.fail! if request.fail
    raise ArgumentError, request.message if request.native

    raise Bridge::Error.new(request.code, request.message)
  end

  def sleep_rpc(request, _context)
    sleep(request.millis / 1000.0)
    V1::SleepReply.new(slept_millis: request.millis, language: "ruby")
  end

  def who_am_i(_request, context)
    V1::WhoAmIReply.new(language: "ruby", metadata: context.metadata, deadline_ms: context.deadline_ms)
  end

  # not_implemented is left out on purpose: callers get UNIMPLEMENTED.
end

# The same handlers as bare methods (no envelope: what an existing Gearman peer sends and reads).
class BareHandler < V1::Bare::Service
  INTEROP = InteropHandler.new

  def echo_json(request, _context) = request
  def echo_scalars_json(request, _context) = request
  def echo_msgpack(request, _context) = request
  def echo_protobuf(request, _context) = request
  def echo_raw(request, _context) = request

  def reverse(request, _context) = V1::RawText.new(text: request.text.reverse)

  def progress_json(request, context) = INTEROP.progress(request, context)
  def raise_json(request, context) = INTEROP.raise_rpc(request, context)
  def raise_msgpack(request, context) = INTEROP.raise_rpc(request, context)
  def who_am_i_json(request, context) = INTEROP.who_am_i(request, context)

  # not_implemented_json is left out on purpose: callers get UNIMPLEMENTED (bare form).
end

Bridge.serve(InteropHandler.new, BareHandler.new, **Bridge::CommandLine.parse(ARGV))
