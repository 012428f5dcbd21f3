# frozen_string_literal: true

require "logger"
require_relative "security/verifier"

module Bridge
  # The log level switch and the per-job log lines of docs/workers.md, shared by every runtime:
  #
  #   job function=NAME handle=H:host:42 encoding=protobuf bytes=123 seconds=0.001234 outcome=OK trace_id=...
  #   job failed function=NAME ... outcome=INVALID_ARGUMENT message="..."
  #
  # The first (debug) is written once a job's answer is sent; the second (warning) instead of it
  # for every error answer. The message is escaped as a JSON string is (Logging.quote: no raw control
  # characters, line breaks or bidi overrides) and cut at MESSAGE_LIMIT characters.
  module Logging
    # The level names --log-level and BRIDGE_LOG_LEVEL accept (any case).
    LEVELS = { "debug" => Logger::DEBUG, "info" => Logger::INFO, "warning" => Logger::WARN,
               "warn" => Logger::WARN, "error" => Logger::ERROR }.freeze
    LEVEL_NAMES = "debug, info, warning, error"
    MESSAGE_LIMIT = 200
    PROGNAME = "bridge-ruby"

    module_function

    # The Logger level of +name+ ("debug", "WARNING", :warn, or a Logger level number), or nil.
    def level(name)
      return name if name.is_a?(Integer) && name.between?(Logger::DEBUG, Logger::UNKNOWN)

      LEVELS[name.to_s.strip.downcase]
    end

    # The level of BRIDGE_LOG_LEVEL (unset or empty: info); ArgumentError for an unknown one.
    def env_level(env = ENV)
      text = env["BRIDGE_LOG_LEVEL"].to_s
      return Logger::INFO if text.strip.empty?

      level(text) or raise ArgumentError, "BRIDGE_LOG_LEVEL must be one of #{LEVEL_NAMES}, not #{text.inspect}"
    end

    # Writes +job+'s line: debug for an OK answer, warning for any other. +seconds+: the time the
    # job took from being taken to its answer.
    def log_job(logger, job, seconds)
      failed = job.outcome != "OK"
      return unless failed || logger.debug?

      line = +"job #{failed ? "failed " : ""}function=#{job.function_name} handle=#{job.handle} " \
              "encoding=#{job.encoding} bytes=#{job.payload.bytesize} seconds=#{format("%.6f", seconds)} " \
              "outcome=#{job.outcome}"
      line << " trace_id=#{job.trace_id}" if job.trace_id
      line << " message=#{quote(job.message)}" if failed && job.message
      failed ? logger.warn(line) : logger.debug(line)
    end

    # What a quoted message never shows raw: quote, backslash, controls (C0, DEL, C1), format
    # characters (bidi controls...) and every separator but the space (U+2028...).
    UNSAFE = /[\\"\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/
    SHORT = { "\\" => "\\\\", '"' => '\\"', "\n" => "\\n", "\r" => "\\r", "\t" => "\\t" }.freeze

    # +text+ cut at MESSAGE_LIMIT characters ("..." marks a cut) and quoted as a JSON string is
    # (docs/workers.md): \" \\ \n \r \t, any other control, separator or format character as
    # \uXXXX, a byte that is not UTF-8 as \xHH; so a caller's message cannot forge log lines.
    def quote(text)
      text = text.to_s.dup.force_encoding(Encoding::UTF_8)
      out = +""
      count = 0
      cut = false
      text.each_char do |char| # a byte that is not UTF-8 comes alone, invalid
        if count == MESSAGE_LIMIT
          cut = true
          break
        end
        count += 1
        out << (char.valid_encoding? ? escape_char(char) : format("\\x%02x", char.getbyte(0)))
      end
      "\"#{out}#{"..." if cut}\""
    end

    def escape_char(char)
      return char unless UNSAFE.match?(char)

      SHORT[char] || char.encode(Encoding::UTF_16BE).unpack("n*").map { |unit| format("\\u%04x", unit) }.join
    end
  end

  # W3C Trace Context (docs/workers.md, "Trace context"): the caller's +traceparent+ travels in the
  # envelope's metadata; a value that is not a valid version-00 traceparent is ignored.
  module Trace
    TRACEPARENT = "traceparent"
    TRACESTATE = "tracestate"
    FORMAT = /\A00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}\z/

    module_function

    # +value+ when it is a valid version-00 traceparent, else nil.
    def valid(value)
      value.is_a?(String) && FORMAT.match?(value) ? value : nil
    end

    # The valid traceparent among the envelope's metadata entries (or a Hash), or nil.
    def traceparent(metadata)
      return valid(metadata[TRACEPARENT]) if metadata.is_a?(Hash)

      found = nil
      metadata.each { |entry| found = entry.value if entry.key == TRACEPARENT } # the last one wins, as in a map
      valid(found)
    end

    # The 32 hex digits of a valid traceparent's trace id.
    def trace_id(traceparent) = traceparent && traceparent[3, 32]

    # The 16 hex digits of a valid traceparent's parent (span) id.
    def parent_id(traceparent) = traceparent && traceparent[36, 16]
  end
end
