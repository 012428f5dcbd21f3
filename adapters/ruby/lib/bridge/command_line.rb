# frozen_string_literal: true

require "optparse"
require_relative "logging"
require_relative "version"
require_relative "worker"

module Bridge
  # The command line every bridge worker accepts (docs/workers.md), as keyword options for
  # Bridge.serve:
  #
  #   Interop.serve(Handler.new, **Bridge::CommandLine.parse(ARGV))
  #
  #   --servers HOST:PORT[,HOST:PORT...]   job servers, tls:// for TLS ($BRIDGE_SERVERS, else 127.0.0.1:4730)
  #   --concurrency N                      jobs run at once, 1-1024 ($BRIDGE_CONCURRENCY, else 1)
  #   --log-level LEVEL                    debug, info, warning, error ($BRIDGE_LOG_LEVEL, else info)
  #   --max-request-bytes N                largest job payload accepted (default 64 MiB + 64 KiB)
  #   --read-timeout SECONDS               a GRAB or ECHO unanswered this long drops that server's
  #                                        connection, which reconnects (default 5)
  #   --help, -h / --version
  #
  # The command line wins over the environment; an empty variable counts as unset. A bad flag or
  # value is one line on stderr ("PROGRAM: error: ... (see --help)") and exit status 2.
  module CommandLine
    # A bad flag or value; its message names the flag (or the environment variable).
    class Error < ArgumentError; end

    MAX_CONCURRENCY = 1024
    FLAGS = %w[--servers --concurrency --log-level --max-request-bytes --read-timeout --help --version].freeze
    DEFAULT_SERVERS = "127.0.0.1:4730"

    # The options of +argv+ and +env+ (Hash of servers:, concurrency:, log_level:, and
    # max_request_bytes: / read_timeout: when given). --help and --version print to stdout and
    # exit 0; a bad flag or value prints one line to stderr and exits 2.
    def self.parse(argv, program: $PROGRAM_NAME, env: ENV)
      parse!(argv, program: program, env: env)
    rescue Error => e
      warn("#{File.basename(program)}: error: #{e.message} (see --help)")
      exit 2
    end

    # As #parse, but a bad flag or value raises CommandLine::Error instead of exiting.
    def self.parse!(argv, program: $PROGRAM_NAME, env: ENV)
      name = File.basename(program)
      options = {}
      parser = parser(name, options)
      exact(argv.to_a)
      rest = begin
        parser.parse(argv.to_a)
      rescue OptionParser::InvalidOption, OptionParser::AmbiguousOption => e
        raise Error, "unknown flag #{e.args.first}"
      rescue OptionParser::MissingArgument => e
        raise Error, "#{e.args.first} needs a value"
      rescue OptionParser::ParseError => e
        raise Error, e.message
      end
      raise Error, "unexpected argument #{shown(rest.first)}" unless rest.empty?

      resolve(options, env)
    end

    def self.parser(name, options)
      OptionParser.new do |opts|
        opts.program_name = name
        opts.banner = "usage: #{name} [options]\n\nA bridge worker (bridge ruby runtime #{VERSION}).\n\noptions:"
        opts.on("--servers HOST:PORT[,...]", "job servers, tls://HOST:PORT for TLS",
                "(env BRIDGE_SERVERS; default #{DEFAULT_SERVERS})") { |v| options[:servers] = value("--servers", v) }
        opts.on("--concurrency N", "jobs run at once, 1-#{MAX_CONCURRENCY}",
                "(env BRIDGE_CONCURRENCY; default 1)") { |v| options[:concurrency] = value("--concurrency", v) }
        opts.on("--log-level LEVEL", "#{Logging::LEVEL_NAMES} (warn), any case",
                "(env BRIDGE_LOG_LEVEL; default info)") { |v| options[:log_level] = value("--log-level", v) }
        opts.on("--max-request-bytes N", "largest job payload accepted",
                "(default #{Dispatcher::DEFAULT_MAX_REQUEST_BYTES})") do |v|
          options[:max_request_bytes] = positive_integer("--max-request-bytes", value("--max-request-bytes", v))
        end
        opts.on("--read-timeout SECONDS", "a GRAB or ECHO unanswered this long drops",
                "that server's connection, which reconnects (default 5)") do |v|
          options[:read_timeout] = positive_number("--read-timeout", value("--read-timeout", v))
        end
        opts.on("-h", "--help", "show this help and exit") do
          $stdout.puts(opts.help)
          exit 0
        end
        opts.on("--version", "show the version and exit") do
          $stdout.puts("#{name} (bridge ruby runtime #{VERSION})")
          exit 0
        end
      end
    end
    private_class_method :parser

    # No abbreviations (--conc is an unknown flag, not --concurrency) and none of OptionParser's
    # own extras. (OptionParser#require_exact of Ruby 3.1 refuses --flag=VALUE.)
    def self.exact(argv)
      argv.each do |arg|
        break if arg == "--"
        next unless arg.start_with?("--")

        flag = arg.split("=", 2).first
        raise Error, "unknown flag #{flag}" unless FLAGS.include?(flag)
      end
    end
    private_class_method :exact

    # The flags given, completed from +env+ and the defaults, each checked.
    def self.resolve(options, env)
      servers, servers_from = pick(options[:servers], env, "BRIDGE_SERVERS", "--servers", DEFAULT_SERVERS)
      begin
        parsed = Worker.parse_servers(servers)
      rescue ArgumentError => e
        raise Error, "#{servers_from}: #{e.message}"
      end
      check_security(parsed, env)
      concurrency, concurrency_from = pick(options[:concurrency], env, "BRIDGE_CONCURRENCY", "--concurrency", "1")
      level, level_from = pick(options[:log_level], env, "BRIDGE_LOG_LEVEL", "--log-level", "info")
      level = level.strip.downcase
      unless Logging.level(level)
        raise Error, "#{level_from} must be one of #{Logging::LEVEL_NAMES}, not #{shown(level)}"
      end

      options.merge(servers: servers, concurrency: concurrency(concurrency, concurrency_from),
                    log_level: level == "warn" ? "warning" : level)
    end
    private_class_method :resolve

    # The worker's TLS files (for tls:// servers) and keys from the environment, loaded now so that
    # a wrong one is an error line, not a backtrace when the worker starts.
    def self.check_security(servers, env)
      Security::TlsConfig.from_env(env).check if servers.any?(&:tls)
      Security::Keyring.from_env(env)
    rescue Security::TlsError, Security::KeyringError => e
      raise Error, e.message.start_with?("BRIDGE_") || env["BRIDGE_KEYS"].to_s.empty? ? e.message : "BRIDGE_KEYS: #{e.message}"
    end
    private_class_method :check_security

    # [value, where it came from]: the flag's, else the variable's when set and not empty, else the default.
    def self.pick(given, env, variable, flag, default)
      return [given, flag] unless given.nil?

      from_env = env[variable].to_s
      from_env.strip.empty? ? [default, flag] : [from_env, variable]
    end
    private_class_method :pick

    # A plain decimal integer (digits only: no sign, space or underscore), else nil.
    def self.digits(text) = text.match?(/\A[0-9]+\z/) ? Integer(text, 10) : nil
    private_class_method :digits

    def self.concurrency(text, from)
      number = digits(text)
      return number if number&.between?(1, MAX_CONCURRENCY)

      raise Error, "#{from} must be an integer from 1 to #{MAX_CONCURRENCY}, not #{shown(text)}"
    end
    private_class_method :concurrency

    def self.positive_integer(flag, text)
      number = digits(text)
      return number if number&.positive?

      raise Error, "#{flag} must be a positive integer, not #{shown(text)}"
    end
    private_class_method :positive_integer

    def self.positive_number(flag, text)
      number = Float(text.strip, exception: false)
      return number if number&.positive? && number <= 3600

      raise Error, "#{flag} must be a number of seconds above 0, at most 3600, not #{shown(text)}"
    end
    private_class_method :positive_number

    # A flag's value; "--servers --concurrency 2" is a missing value, not a server named "--concurrency".
    def self.value(flag, text)
      raise Error, "#{flag} needs a value" if text.nil? || text.empty? || text.start_with?("--")

      text
    end
    private_class_method :value

    # +text+ as an error line shows it: 'as typed', or escaped when it holds control characters.
    def self.shown(text)
      text = text.to_s
      text.match?(/\A[[:print:]]*\z/) && !text.include?("'") ? "'#{text}'" : text.dump
    end
    private_class_method :shown
  end
end
