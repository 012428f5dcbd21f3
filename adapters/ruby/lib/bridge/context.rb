# frozen_string_literal: true

require_relative "codec"
require_relative "errors"
require_relative "logging"
require_relative "request_view"

module Bridge
  # What a handler knows about its call and how it talks back before it returns. Passed as the
  # second argument of every handler method.
  #
  #   def resize(request, context)
  #     context.warning("upscaling") if request.factor > 1
  #     context.progress(1, 2)
  #     context.metadata["tenant"]      # from the caller's envelope
  #     context.trace_id                # W3C trace context of the call, or nil
  #     context.time_remaining          # seconds until the caller's deadline, or nil
  #   end
  class Context
    # Absolute deadline in Unix milliseconds; 0 when the caller set none.
    attr_reader :deadline_ms
    # :protobuf or :msgpack: how this call's request and replies travel; a bare method's (no
    # envelope, wire contract section 8) also :json or :raw, fixed by its schema.
    attr_reader :encoding
    # The Gearman function, job handle and unique id of this job.
    attr_reader :function_name, :handle, :unique
    # The caller's W3C traceparent ("00-<trace id>-<parent id>-<flags>") when its metadata held a
    # valid version-00 one, else nil (an invalid one is ignored). Calls made on from the handler
    # keep the trace when they pass +metadata+ on.
    attr_reader :traceparent

    # +metadata+: a Hash, or the envelope's metadata entries (converted on first use: most handlers
    # never read it, and the worker path stays one decode + one encode).
    def initialize(job, metadata:, deadline_ms:, encoding:, emit: nil, traceparent: nil)
      @traceparent = traceparent
      @job = job
      @emit = emit
      @raw_metadata = metadata
      @metadata = nil
      @deadline_ms = deadline_ms
      @encoding = encoding
      @function_name = job.function_name
      @handle = job.handle
      @unique = job.unique
    end

    # Caller-supplied metadata (frozen Hash of String => String).
    def metadata
      @metadata ||= (@raw_metadata.is_a?(Hash) ? @raw_metadata.dup : RequestView.metadata(@raw_metadata)).freeze
    end

    # The 32 hex digits of the call's trace id, or nil without a valid traceparent.
    def trace_id = Trace.trace_id(@traceparent)

    # The 16 hex digits of the caller's span id, or nil without a valid traceparent.
    def parent_id = Trace.parent_id(@traceparent)

    # The caller's W3C tracestate (vendor entries), only alongside a valid traceparent; else nil.
    def tracestate = @traceparent && metadata[Trace::TRACESTATE]

    # The deadline as a Time, or nil.
    def deadline
      @deadline_ms.zero? ? nil : Time.at(@deadline_ms / 1000, @deadline_ms % 1000, :millisecond)
    end

    # Seconds left before the deadline (negative once it passed), or nil without a deadline.
    def time_remaining
      return nil if @deadline_ms.zero?

      (@deadline_ms - Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)) / 1000.0
    end

    # True once the caller's deadline has passed: the caller stopped waiting (its own timeout
    # fired), so a long handler may give up instead of finishing work nobody reads. This is the
    # only cancellation a handler can see: gearmand tells a worker nothing when a caller gives up
    # (a job still queued is removed from gearmand instead). Always false without a deadline.
    def cancelled?
      !@deadline_ms.zero? && Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond) >= @deadline_ms
    end

    # Reports progress (WORK_STATUS): +numerator+ of +denominator+ done.
    def progress(numerator, denominator)
      @job.send_status(Integer(numerator), Integer(denominator))
    end

    # Sends a warning (WORK_WARNING, UTF-8 text); the call goes on.
    def warning(text)
      @job.send_warning(Context.utf8(text))
    end

    # Sends one message of a server-streaming reply (WORK_DATA), encoded like the request. Handlers
    # usually just yield; this is the same thing for code that holds the context but not the block.
    # A unary rpc has no stream items: its reply is what the handler returns.
    def emit(message)
      raise Bridge::Error.new(:internal, "emit: #{@function_name} is not a server-streaming rpc") unless @emit

      @emit.call(message)
    end

    # Ends the call with +code+ and +message+ (raises Bridge::Error).
    def error!(code, message, details: {})
      raise Bridge::Error.new(code, message, details: details)
    end

    # Ends the job with WORK_FAIL, without an explanation (raises Bridge::Fail).
    def fail!
      raise Bridge::Fail
    end

    # +text+ as valid UTF-8 bytes, whatever encoding it came in.
    def self.utf8(text)
      text = text.to_s
      case text.encoding
      when Encoding::UTF_8 then text.valid_encoding? ? text : text.scrub
      when Encoding::BINARY, Encoding::US_ASCII then text.dup.force_encoding(Encoding::UTF_8).scrub
      else text.encode(Encoding::UTF_8, invalid: :replace, undef: :replace)
      end
    end
  end
end
