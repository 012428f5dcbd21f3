# frozen_string_literal: true

require "logger"
require_relative "codec"
require_relative "context"
require_relative "errors"
require_relative "service"
require_relative "gearman/connection"

module Bridge
  # One job taken from a job server, and the packets that answer it. Once a final packet
  # (WORK_COMPLETE, WORK_EXCEPTION or WORK_FAIL) is sent, nothing else goes out for this job.
  class Job
    attr_reader :handle, :function_name, :unique, :payload

    # +hold_final+: keep the final packet for the connection's next write (see
    # Gearman::Connection#send_packet); whoever sets it must send or flush right after the job.
    def initialize(connection, handle, function_name, unique, payload, hold_final: false)
      @connection = connection
      @hold_final = hold_final
      @handle = handle
      @function_name = function_name
      @unique = unique
      @payload = payload
      @finished = false
    end

    def finished? = @finished

    def send_data(data) = intermediate(:WORK_DATA, data)
    def send_warning(text) = intermediate(:WORK_WARNING, text)
    def send_status(numerator, denominator) = intermediate(:WORK_STATUS, numerator.to_s, denominator.to_s)

    def complete(data) = final(:WORK_COMPLETE, @handle, data)
    def exception(data) = final(:WORK_EXCEPTION, @handle, data)
    def fail = final(:WORK_FAIL, @handle)

    private

    def intermediate(type, *args)
      raise Bridge::Error.new(:failed_precondition, "the job already ended; #{type} not sent") if @finished

      @connection.send_packet(type, @handle, *args)
    end

    def final(type, *args)
      return if @finished

      @finished = true
      @hold_final ? @connection.send_packet(type, *args, hold: true) : @connection.send_packet(type, *args)
    end
  end

  # The job flow of wire-contract section 2: size check, envelope, version, encoding, deadline,
  # body, implementation, handler; every job gets exactly one answer.
  class Dispatcher
    LANGUAGE = "ruby"
    DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024 + 64 * 1024
    ENCODINGS = { ENCODING_UNSPECIFIED: :protobuf, PROTOBUF: :protobuf, MSGPACK: :msgpack }.freeze
    # Exceptions a handler may raise that still leave the process healthy enough to go on.
    HANDLER_FAILURES = [StandardError, ScriptError, SystemStackError].freeze
    TRACE_LINES = 30
    # The envelope's fields, read through their descriptors: protobuf 3.21's generated accessors
    # go through method_missing, several times slower, and this runs once per job.
    REQUEST_FIELDS = Bridge::V1::Request.descriptor.to_h { |field| [field.name.to_sym, field] }.freeze
    VERSION, DEADLINE, METADATA, ENCODING, BODY =
      REQUEST_FIELDS.values_at(:version, :deadline_ms, :metadata, :encoding, :body)

    attr_reader :max_request_bytes

    def initialize(max_request_bytes: DEFAULT_MAX_REQUEST_BYTES, logger: Logger.new($stderr))
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

        @routes[rpc.function_name] = [rpc, handler, rpc.implemented_by?(handler)].freeze
      end
      self
    end

    def function_names = @routes.keys

    # Answers +job+. Raises only Gearman::ConnectionError (the answer could not be sent).
    def perform(job)
      payload = job.payload
      if payload.bytesize > @max_request_bytes
        return reject(job, :RESOURCE_EXHAUSTED,
                      "request of #{payload.bytesize} bytes exceeds this worker's limit of #{@max_request_bytes}")
      end

      request = begin
        Bridge::V1::Request.decode(payload)
      rescue Google::Protobuf::ParseError, ArgumentError, TypeError, RangeError => e
        return reject(job, :INVALID_ARGUMENT, "malformed request envelope: #{e.message}")
      end
      version = VERSION.get(request)
      if version != 1
        return reject(job, :FAILED_PRECONDITION, "unsupported envelope version #{version} (this worker speaks 1)")
      end

      encoding = ENCODINGS[ENCODING.get(request)]
      return reject(job, :INVALID_ARGUMENT, "unknown body encoding #{ENCODING.get(request).inspect}") unless encoding

      deadline_ms = DEADLINE.get(request)
      if deadline_ms != 0 && Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond) >= deadline_ms
        return reject(job, :DEADLINE_EXCEEDED, "the deadline passed before #{job.function_name} started")
      end

      rpc, handler, implemented = @routes[job.function_name]
      return reject(job, :UNIMPLEMENTED, "no handler for function #{job.function_name}") unless rpc

      body = begin
        Codec.decode(rpc.input, BODY.get(request), encoding)
      rescue DecodeError => e
        return reject(job, :INVALID_ARGUMENT, "request body: #{e.message}")
      end
      return reject(job, :UNIMPLEMENTED, "#{rpc.owner.service_name}.#{rpc.name} is not implemented by this worker") unless implemented

      context = Context.new(job, metadata: METADATA.get(request), deadline_ms: deadline_ms, encoding: encoding)
      run(job, rpc, handler, body, context, encoding)
    rescue Gearman::ConnectionError
      raise
    rescue StandardError => e
      # A bug of the runtime itself must still answer the job and leave the worker running.
      @logger.error("#{job.function_name}: internal error: #{e.class}: #{e.message}")
      answer_error(job, Bridge::V1::Code::INTERNAL, "worker runtime error: #{e.message}", e) unless job.finished?
    end

    private

    def run(job, rpc, handler, body, context, encoding)
      if rpc.server_streaming
        yielded = false
        result = handler.public_send(rpc.method_name, body, context) do |item|
          yielded = true
          job.send_data(encode_reply(rpc, item, encoding))
        end
        # A handler may also return the items (an Array or Enumerator) instead of yielding them.
        result.each { |item| job.send_data(encode_reply(rpc, item, encoding)) } if !yielded && result.is_a?(Enumerable)
        job.complete("")
      else
        job.complete(encode_reply(rpc, handler.public_send(rpc.method_name, body, context), encoding))
      end
    rescue Gearman::ConnectionError
      raise
    rescue Bridge::Fail
      job.fail
    rescue Bridge::Error => e
      answer_error(job, e.code, e.message, e, details: e.details)
    rescue *HANDLER_FAILURES => e
      @logger.warn("#{job.function_name}: #{e.class}: #{e.message}")
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
      @logger.info("#{job.function_name} (#{job.handle}): #{code}: #{message}")
      answer_error(job, Bridge::V1::Code.resolve(code), message, nil,
                   type: code.to_s.split("_").map(&:capitalize).join)
    end

    def answer_error(job, code, message, exception, details: {}, type: nil)
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
