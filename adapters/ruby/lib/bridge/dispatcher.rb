# frozen_string_literal: true

require "json"
require "logger"
require_relative "codec"
require_relative "context"
require_relative "errors"
require_relative "frame"
require_relative "logging"
require_relative "request_view"
require_relative "security/verifier"
require_relative "service"
require_relative "gearman/connection"

module Bridge
  # One job taken from a job server, and the packets that answer it. Once a final packet
  # (WORK_COMPLETE, WORK_EXCEPTION or WORK_FAIL) is sent, nothing else goes out for this job.
  #
  # Its replies are frames (Bridge::Frame) of one attempt: the attempt id is drawn when the job is
  # taken; #frame_replies gives the encoding and the reply type's tag once the envelope is read.
  # A job of a bare method (#bare!) sends its reply as it is: no frames, no attempt markers.
  # A signed job's (#sign_replies) WORK_DATA, WORK_COMPLETE and WORK_EXCEPTION payloads carry the
  # reply MAC (wire contract, section 9.3).
  class Job
    attr_reader :handle, :function_name, :unique, :payload, :attempt, :bare
    # How the job ended, for its log line: the status code's name ("OK", "INVALID_ARGUMENT"...)
    # or "WORK_FAIL", nil until answered; the error answer's message; the trace id of a valid
    # traceparent in its metadata.
    attr_reader :outcome, :message
    attr_accessor :trace_id
    # The envelope's body encoding (:protobuf or :msgpack) once read.
    attr_writer :wire_encoding

    # +hold_final+: keep the final packet for the connection's next write (see
    # Gearman::Connection#send_packet); whoever sets it must send or flush right after the job.
    def initialize(connection, handle, function_name, unique, payload, hold_final: false)
      @connection = connection
      @generation = connection.generation # replies go to the connection the job came on, or nowhere
      @hold_final = hold_final
      @handle = handle
      @function_name = function_name
      @unique = unique
      @payload = payload
      @finished = false
      @attempt = Frame.new_attempt_id
      @encoding = nil
      @tag = 0
      @items = 0
      @data_sent = false
      @bare = nil # the encoding of a bare method's job
      @signing = nil # [key, key id, nonce] of a signed job
      @wire_encoding = nil
      @outcome = nil
      @message = nil
      @trace_id = nil
      @lock = Mutex.new # a handler may report from several threads: sequence numbers stay in order
    end

    def finished? = @finished

    # The encoding its log line names: a bare method's, the envelope's, else protobuf (the
    # envelope's own).
    def encoding = @bare || @encoding || @wire_encoding || :protobuf

    # Records the error answer about to be sent (+code+: a Bridge::V1::Code number or name).
    def answered_error(code, message)
      @outcome = (code.is_a?(Integer) ? Bridge::V1::Code.lookup(code) : code)&.to_s || code.to_s
      @message = message
    end

    # The encoding (:protobuf or :msgpack) and reply type tag of every frame this job sends.
    def frame_replies(encoding, tag)
      @encoding = encoding
      @tag = tag
    end

    # The job is a bare method's, in +encoding+ (wire contract section 8): replies go unframed.
    def bare!(encoding)
      @bare = encoding
    end

    # From now on every WORK_DATA, WORK_COMPLETE and WORK_EXCEPTION of this job carries
    # HMAC-SHA256(key, reply input) after its payload (the dispatcher calls it once a job names a
    # known key with a 16-byte nonce).
    def sign_replies(key, key_id, nonce)
      @signing = [key, key_id, nonce].freeze
    end

    def signed? = !@signing.nil?

    # Never shows the key of a signed job (a handler may print its context).
    def inspect = "#<#{self.class.name} #{@function_name} #{@handle}#{@signing ? " signed (key id #{@signing[1]})" : ""}>"

    # One stream item (WORK_DATA, frame kind ITEM, sequence = its index).
    def send_item(body)
      @lock.synchronize do
        intermediate(:WORK_DATA, frame(Frame::ITEM, @items, body))
        @items += 1
        @data_sent = true
      end
    end

    def send_warning(text) = reported(:WORK_WARNING, text)
    def send_status(numerator, denominator) = reported(:WORK_STATUS, numerator.to_s, denominator.to_s)

    # The unary reply (WORK_COMPLETE, frame kind REPLY; a bare job's reply as it is).
    def complete(body)
      @lock.synchronize { final(:WORK_COMPLETE, @handle, signed(:WORK_COMPLETE, @bare ? body : frame(Frame::REPLY, 0, body))) }
    end

    # The end of a stream (WORK_COMPLETE, frame kind END_OF_STREAM, sequence = items sent).
    def complete_stream
      @lock.synchronize { final(:WORK_COMPLETE, @handle, signed(:WORK_COMPLETE, frame(Frame::END_OF_STREAM, @items))) }
    end

    def exception(data) = @lock.synchronize { final(:WORK_EXCEPTION, @handle, signed(:WORK_EXCEPTION, data)) }
    def fail = @lock.synchronize { final(:WORK_FAIL, @handle) }

    private

    def frame(kind, sequence, body = nil)
      raise Bridge::Error.new(:internal, "reply sent before the request was read") unless @encoding

      Frame.encode(kind, @encoding, @tag, @attempt, sequence, body)
    end

    # A status or warning: the first of a run that has sent no WORK_DATA yet follows an attempt
    # marker, so the client knows which run it belongs to (not for a bare job: no frames at all).
    def reported(type, *args)
      @lock.synchronize do
        unless @data_sent || @bare
          intermediate(:WORK_DATA, frame(Frame::MARKER, 0))
          @data_sent = true
        end
        intermediate(type, *args)
      end
    end

    def intermediate(type, data, *rest)
      raise Bridge::Error.new(:failed_precondition, "the job already ended; #{type} not sent") if @finished

      data = signed(type, data) if type == :WORK_DATA
      @connection.send_packet(type, @handle, data, *rest, generation: @generation)
    end

    # +payload+ with the reply MAC appended, for a signed job; else as it is.
    def signed(type, payload)
      return payload unless @signing

      key, key_id, nonce = @signing
      payload.b + Security::Signing.reply_mac(key, @function_name, key_id, nonce, type, payload)
    end

    def final(type, *args)
      return if @finished

      @finished = true
      @outcome ||= type == :WORK_FAIL ? "WORK_FAIL" : "OK"
      @connection.send_packet(type, *args, hold: @hold_final, generation: @generation)
    end
  end

  # The job flow of wire-contract section 2: size check, envelope, version, encoding, deadline,
  # body, implementation, handler; for a bare method's job (section 8.4): size check, body,
  # implementation, handler. Every job gets exactly one answer.
  class Dispatcher
    LANGUAGE = "ruby"
    DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024 + 64 * 1024
    ENCODINGS = { Bridge::V1::Encoding::ENCODING_UNSPECIFIED => :protobuf, Bridge::V1::Encoding::PROTOBUF => :protobuf,
                  Bridge::V1::Encoding::MSGPACK => :msgpack }.freeze
    # Exceptions a handler may raise that still leave the process healthy enough to go on.
    HANDLER_FAILURES = [StandardError, ScriptError, SystemStackError].freeze
    TRACE_LINES = 30
    VERSION, DEADLINE, METADATA, ENCODING, BODY, KEY_ID, NONCE, MAC =
      RequestView::VERSION, RequestView::DEADLINE, RequestView::METADATA, RequestView::ENCODING, RequestView::BODY,
      RequestView::KEY_ID, RequestView::NONCE, RequestView::MAC

    BARE_HINT = "a caller that sends bare payloads needs the method declared `bare: true` (wire contract section 8)"
    NO_METADATA = {}.freeze

    attr_reader :max_request_bytes
    # The checks of signed jobs (a Security::JobVerifier), or nil: jobs are not checked.
    attr_accessor :verifier

    # The WORK_EXCEPTION payload of a bare method's error (wire contract section 8.3): a JSON
    # method's is {"code": 5, "status": "NOT_FOUND", "message": "..."}, any other the message
    # text alone, UTF-8 (a bare peer cannot read a protobuf bridge.v1.Error).
    def self.bare_error(encoding, code, message)
      text = Context.utf8(message)
      return text.b unless encoding == :json

      status = (Bridge::V1::Code.lookup(code) || :UNKNOWN).to_s
      JSON.generate({ "code" => code, "status" => status, "message" => text }).b
    end

    def initialize(max_request_bytes: DEFAULT_MAX_REQUEST_BYTES, logger: Logger.new($stderr), verifier: nil)
      @verifier = verifier
      @routes = {}
      @max_request_bytes = max_request_bytes
      @logger = logger
    end

    # Serves every rpc of +handler+'s service (an instance of a generated Service class).
    def add_service(handler)
      unless handler.class.respond_to?(:rpcs)
        raise ArgumentError, "#{handler.class} is not a generated bridge service (it does not include Bridge::Service)"
      end

      handler.class.rpcs.each_value do |rpc|
        if @routes.key?(rpc.function_name)
          raise ArgumentError, "function #{rpc.function_name} is already served by #{@routes[rpc.function_name][1].class}"
        end

        tag = Frame.tag(rpc.output.descriptor.name)
        @routes[rpc.function_name] = [rpc, handler, rpc.implemented_by?(handler), tag].freeze
      end
      self
    end

    def function_names = @routes.keys

    # Answers +job+ and logs it (Logging.log_job). Raises only Gearman::ConnectionError (the
    # answer could not be sent; nothing is logged here then).
    def perform(job)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      answer(job)
      Logging.log_job(@logger, job, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) if job.finished?
    end

    private

    def answer(job)
      rpc, handler, implemented, tag = @routes[job.function_name]
      return perform_bare(job, rpc, handler, implemented) if rpc&.bare

      payload = job.payload
      if payload.bytesize > @max_request_bytes
        return reject(job, :RESOURCE_EXHAUSTED,
                      "request of #{payload.bytesize} bytes exceeds this worker's limit of #{@max_request_bytes}")
      end

      request = begin
        RequestView.decode(payload)
      rescue DecodeError => e
        return reject(job, :INVALID_ARGUMENT, "the job is not a bridge envelope (bridge.v1.Request): #{e.message}; #{BARE_HINT}")
      end
      version = VERSION.get(request)
      if version != 1
        hint = version.zero? ? "; if the job is not a bridge envelope at all, #{BARE_HINT}" : ""
        return reject(job, :FAILED_PRECONDITION, "unsupported envelope version #{version} (this worker speaks 1)#{hint}")
      end

      if (verifier = @verifier) && (failure = verify(job, verifier, request))
        return refuse(job, rpc, failure, KEY_ID.get(request))
      end

      metadata = METADATA.get(request)
      traceparent = metadata.length.zero? ? nil : Trace.traceparent(metadata)
      job.trace_id = Trace.trace_id(traceparent)
      encoding = ENCODINGS[ENCODING.get(request)]
      return reject(job, :INVALID_ARGUMENT, "unknown body encoding #{ENCODING.get(request).inspect}") unless encoding

      job.wire_encoding = encoding

      deadline_ms = DEADLINE.get(request)
      if deadline_ms != 0 && Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond) >= deadline_ms
        return reject(job, :DEADLINE_EXCEEDED, "the deadline passed before #{job.function_name} started")
      end

      return reject(job, :UNIMPLEMENTED, "no handler for function #{job.function_name}") unless rpc

      job.frame_replies(encoding, tag)

      body = begin
        Codec.decode(rpc.input, BODY.get(request), encoding)
      rescue DecodeError => e
        return reject(job, :INVALID_ARGUMENT, "request body: #{e.message}")
      end
      return reject(job, :UNIMPLEMENTED, "#{rpc.owner.service_name}.#{rpc.name} is not implemented by this worker") unless implemented

      emit = rpc.server_streaming ? ->(item) { job.send_item(encode_reply(rpc, item, encoding)) } : nil
      context = Context.new(job, metadata: metadata, deadline_ms: deadline_ms, encoding: encoding,
                                 emit: emit, traceparent: traceparent)
      run(job, rpc, handler, body, context, emit)
    rescue Gearman::ConnectionError
      raise
    rescue StandardError => e
      # A bug of the runtime itself must still answer the job and leave the worker running.
      @logger.error("#{job.function_name}: internal error: #{e.class}: #{e.message}")
      answer_error(job, Bridge::V1::Code::INTERNAL, "worker runtime error: #{e.message}", e) unless job.finished?
    end

    # A bare method's job (wire contract section 8.4): the payload is the request alone, in the
    # method's encoding; no deadline and no metadata travel.
    def perform_bare(job, rpc, handler, implemented)
      job.bare!(rpc.encoding)
      return refuse(job, rpc, "bare jobs cannot be signed") if @verifier

      payload = job.payload
      if payload.bytesize > @max_request_bytes
        return reject(job, :RESOURCE_EXHAUSTED,
                      "request of #{payload.bytesize} bytes exceeds this worker's limit of #{@max_request_bytes}")
      end

      body = begin
        # Bare MSGPACK refuses keys its type does not have (section 8.1); enveloped MSGPACK skips them.
        if rpc.encoding == :msgpack
          Codec::Msgpack.decode(rpc.input, payload, unknown_keys: false)
        else
          Codec.decode(rpc.input, payload, rpc.encoding)
        end
      rescue DecodeError => e
        return reject(job, :INVALID_ARGUMENT, "request (bare #{rpc.encoding}): #{e.message}")
      end
      return reject(job, :UNIMPLEMENTED, "#{rpc.owner.service_name}.#{rpc.name} is not implemented by this worker") unless implemented

      run(job, rpc, handler, body, Context.new(job, metadata: NO_METADATA, deadline_ms: 0, encoding: rpc.encoding), nil)
    end

    # Section 9.2's checks of a signed job (after the envelope's steps 1-3); nil when it may run,
    # else the failed check. A job naming a known key with a 16-byte nonce gets signed replies,
    # its refusal included.
    def verify(job, verifier, request)
      key_id = KEY_ID.get(request)
      nonce = NONCE.get(request)
      key = verifier.reply_key(key_id, nonce)
      job.sign_replies(key, key_id, nonce) if key
      verifier.check(job.function_name,
                     key_id: key_id, nonce: nonce, mac: MAC.get(request), version: VERSION.get(request),
                     deadline_ms: DEADLINE.get(request), encoding: ENCODING.get(request),
                     metadata: RequestView.metadata(METADATA.get(request)), body: BODY.get(request))
    end

    # The answer to a job that failed a check, and its one warning line (function, job handle,
    # the check, the key id it named, escaped; never a key): UNAUTHENTICATED, or
    # RESOURCE_EXHAUSTED for a full replay cache (a well-signed job this worker cannot vouch for
    # yet: wire contract, 9.2).
    def refuse(job, rpc, failure, key_id = "")
      status = failure == Security::REPLAY_CACHE_FULL ? :RESOURCE_EXHAUSTED : :UNAUTHENTICATED
      name = rpc ? "#{rpc.owner.service_name}.#{rpc.name}" : job.function_name
      answer_error(job, Bridge::V1::Code.resolve(status), "#{name}: #{failure}", nil,
                   type: status.to_s.split("_").map(&:capitalize).join)
      # its log line (the job's, at warning) says why, and which key id the job named
      job.answered_error(status, "refused: #{failure}#{key_id.empty? ? "" : " (key id #{Security.log_quote(key_id)})"}")
    end

    def run(job, rpc, handler, body, context, emit)
      if emit
        yielded = false
        result = handler.public_send(rpc.method_name, body, context) do |item|
          yielded = true
          emit.call(item)
        end
        # A handler may also return the items (an Array or Enumerator) instead of yielding them.
        result.each(&emit) if !yielded && result.is_a?(Enumerable)
        job.complete_stream
      else
        job.complete(encode_reply(rpc, handler.public_send(rpc.method_name, body, context), context.encoding))
      end
    rescue Gearman::ConnectionError
      raise
    rescue Bridge::Fail
      job.fail
    rescue Bridge::Error => e
      answer_error(job, e.code, e.message, e, details: e.details)
    rescue *HANDLER_FAILURES => e
      answer_error(job, Bridge::V1::Code::UNKNOWN, e.message, e)
    end

    def encode_reply(rpc, reply, encoding)
      reply = rpc.output.new(**reply) if reply.is_a?(Hash)
      unless reply.is_a?(rpc.output)
        raise EncodeError, "#{rpc.method_name} returned #{reply.class}, expected #{rpc.output}"
      end

      Codec.encode(reply, encoding)
    rescue EncodeError => e
      raise Bridge::Error.new(:internal, e.message)
    end

    # An error the runtime itself answers; its type is the code's name in CamelCase
    # (InvalidArgument, DeadlineExceeded...), as every bridge runtime reports it.
    def reject(job, code, message)
      answer_error(job, Bridge::V1::Code.resolve(code), message, nil,
                   type: code.to_s.split("_").map(&:capitalize).join)
    end

    def answer_error(job, code, message, exception, details: {}, type: nil)
      job.answered_error(code, message)
      return job.exception(Dispatcher.bare_error(job.bare, code, message)) if job.bare

      type ||= exception.class.name || exception.class.to_s
      error = Bridge::V1::Error.new(
        code: code,
        message: Context.utf8(message),
        type: Context.utf8(type),
        language: LANGUAGE,
        details: details,
        trace: exception ? Context.utf8((exception.backtrace || []).first(TRACE_LINES).join("\n")) : ""
      )
      job.exception(Bridge::V1::Error.encode(error))
    end
  end
end
