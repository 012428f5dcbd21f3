# frozen_string_literal: true

require_relative "v1/envelope_pb"

module Bridge
  # The error a handler raises to end its call with a canonical code:
  #
  #   raise Bridge::Error.new(:not_found, "no user #{id}")
  #   raise Bridge::Error.new(Bridge::V1::Code::INVALID_ARGUMENT, "bad date", details: { "field" => "at" })
  #
  # The caller receives that code and message; the Error envelope's +type+ is this class's name
  # (or your subclass's). Anything else a handler raises reaches the caller as UNKNOWN with its own
  # class name and message.
  class Error < StandardError
    attr_reader :code, :details

    # +code+: a Bridge::V1::Code number or its name as a symbol/string, any case.
    def initialize(code, message = nil, details: {})
      @code = Error.code_number(code)
      @details = details.to_h { |k, v| [k.to_s, v.to_s] }
      super(message || Bridge::V1::Code.lookup(@code).to_s)
    end

    # Bridge::V1::Code number of +code+ (Integer, :not_found, "NOT_FOUND"); OK is not an error code.
    def self.code_number(code)
      number = code.is_a?(Integer) ? code : Bridge::V1::Code.resolve(code.to_s.upcase.to_sym)
      raise ArgumentError, "unknown status code #{code.inspect}" if number.nil? || Bridge::V1::Code.lookup(number).nil?
      raise ArgumentError, "OK is not an error code" if number.zero?

      number
    end

    def code_name
      Bridge::V1::Code.lookup(@code)
    end
  end

  # Raise it (or call context.fail!) to end the job with WORK_FAIL: the worker gives up without an
  # explanation and the caller gets WorkerFailed.
  class Fail < StandardError
    def initialize(message = "the handler gave up")
      super
    end
  end

  # Bytes that do not decode as the message (either encoding). The runtime answers INVALID_ARGUMENT.
  class DecodeError < StandardError; end

  # A message that cannot be encoded (e.g. a handler returned something that is not the reply type).
  class EncodeError < StandardError; end
end
