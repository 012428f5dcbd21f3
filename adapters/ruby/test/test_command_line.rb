# frozen_string_literal: true

require_relative "test_helper"

# Bridge::CommandLine (docs/workers.md, "Command line"): flags, environment fallbacks, one-line
# errors. The process-level behaviour (stdout, stderr, exit status) is tested from Python in
# tests/adapters/test_ruby_worker_contract.py.
class TestCommandLine < Minitest::Test
  CL = Bridge::CommandLine

  def parse(*argv, env: {}) = CL.parse!(argv, program: "/srv/bin/worker.rb", env: env)

  def error(*argv, env: {})
    assert_raises(CL::Error) { parse(*argv, env: env) }.message
  end

  def test_defaults
    assert_equal({ servers: "127.0.0.1:4730", concurrency: 1, log_level: "info" }, parse)
  end

  def test_flags_in_both_forms_and_the_runtime_extras
    options = parse("--servers=a:1,tls://b:2", "--concurrency", "8", "--log-level=DEBUG",
                    "--max-request-bytes", "1024", "--read-timeout=2.5")
    assert_equal({ servers: "a:1,tls://b:2", concurrency: 8, log_level: "debug", max_request_bytes: 1024,
                   read_timeout: 2.5 }, options)
    assert_equal "warning", parse("--log-level", "Warn")[:log_level]
  end

  def test_the_environment_is_a_fallback_and_empty_counts_as_unset
    env = { "BRIDGE_SERVERS" => "e:9", "BRIDGE_CONCURRENCY" => "3", "BRIDGE_LOG_LEVEL" => "error" }
    assert_equal({ servers: "e:9", concurrency: 3, log_level: "error" }, parse(env: env))
    assert_equal({ servers: "f:1", concurrency: 2, log_level: "debug" },
                 parse("--servers", "f:1", "--concurrency", "2", "--log-level", "debug", env: env))
    empty = { "BRIDGE_SERVERS" => "", "BRIDGE_CONCURRENCY" => " ", "BRIDGE_LOG_LEVEL" => "" }
    assert_equal({ servers: "127.0.0.1:4730", concurrency: 1, log_level: "info" }, parse(env: empty))
  end

  def test_bad_flags_and_values_name_what_is_wrong
    assert_equal "unknown flag --bogus", error("--bogus")
    assert_equal "unknown flag --conc", error("--conc", "2"), "no abbreviations"
    assert_equal "unknown flag -x", error("-x")
    assert_equal "--servers needs a value", error("--servers")
    assert_equal "--servers needs a value", error("--servers", "--concurrency", "2")
    assert_equal "--concurrency must be an integer from 1 to 1024, not '0'", error("--concurrency", "0")
    assert_equal "--concurrency must be an integer from 1 to 1024, not '1025'", error("--concurrency=1025")
    assert_equal "--concurrency must be an integer from 1 to 1024, not 'two'", error("--concurrency", "two")
    assert_equal "--log-level must be one of debug, info, warning, error, not 'loud'", error("--log-level", "loud")
    assert_match(/\A--servers: bad port/, error("--servers", "a:b"))
    assert_equal "--read-timeout must be a number of seconds above 0, at most 3600, not '0'", error("--read-timeout", "0")
    assert_match(/\A--read-timeout must be/, error("--read-timeout", "3601"))
    # integers are plain decimal digits; a port is 1-65535 (docs/workers.md)
    assert_equal "--concurrency must be an integer from 1 to 1024, not '+4'", error("--concurrency=+4")
    assert_equal "--concurrency must be an integer from 1 to 1024, not ' 4'", error("--concurrency", " 4")
    assert_equal "--max-request-bytes must be a positive integer, not '+5'", error("--max-request-bytes", "+5")
    assert_match(/\A--servers: port out of 1-65535/, error("--servers", "127.0.0.1:0"))
    assert_match(/\A--servers: port out of 1-65535/, error("--servers", "127.0.0.1:99999"))
    assert_match(/\A--servers: bad port/, error("--servers", "127.0.0.1:+47"))
    assert_match(/\A--servers: /, error("--servers", ","))
    assert_match(/\ABRIDGE_SERVERS: port out of 1-65535/, error(env: { "BRIDGE_SERVERS" => "a:0" }))
    assert_equal "BRIDGE_CONCURRENCY must be an integer from 1 to 1024, not '+4'", error(env: { "BRIDGE_CONCURRENCY" => "+4" })
    assert_equal "--max-request-bytes must be a positive integer, not '-5'", error("--max-request-bytes", "-5")
    assert_equal "unexpected argument 'extra'", error("extra")
    assert_equal "--concurrency must be an integer from 1 to 1024, not \"\\e[2J\"", error("--concurrency", "\e[2J")
  end

  def test_a_bad_environment_value_names_the_variable
    assert_equal "BRIDGE_CONCURRENCY must be an integer from 1 to 1024, not 'x'",
                 error(env: { "BRIDGE_CONCURRENCY" => "x" })
    assert_equal "BRIDGE_LOG_LEVEL must be one of debug, info, warning, error, not 'verbose'",
                 error(env: { "BRIDGE_LOG_LEVEL" => "verbose" })
    assert_match(/\ABRIDGE_SERVERS: /, error(env: { "BRIDGE_SERVERS" => "a:b" }))
    # the command line wins: a bad variable it overrides is no error
    assert_equal 2, parse("--concurrency", "2", env: { "BRIDGE_CONCURRENCY" => "x" })[:concurrency]
  end

  def test_tls_files_and_keys_from_the_environment_are_checked_too
    assert_match(/\ATLS CA file "\/nonexistent" cannot be used/,
                 error("--servers", "tls://a:1", env: { "BRIDGE_TLS_CA" => "/nonexistent" }))
    assert_equal({ servers: "a:1", concurrency: 1, log_level: "info" },
                 parse("--servers", "a:1", env: { "BRIDGE_TLS_CA" => "/nonexistent" }), "no tls:// server")
    message = error(env: { "BRIDGE_KEYS" => "k1:c2VjcmV0LXNlY3JldC1zZWNyZXQ" })
    assert_match(/\ABRIDGE_KEYS: /, message)
    refute_includes message, "c2VjcmV0LXNlY3JldC1zZWNyZXQ", "a key is never shown"
    assert_match(/\ABRIDGE_KEYS_FILE \/nonexistent: /, error(env: { "BRIDGE_KEYS_FILE" => "/nonexistent" }))
  end

  def test_the_log_level_reaches_the_worker_logger
    worker = Bridge::Worker.new(**parse("--log-level", "warning"))
    assert_equal Logger::WARN, worker.logger.level
    assert_same worker.logger, worker.dispatcher.instance_variable_get(:@logger), "the job lines use it too"
    assert_equal Logger::DEBUG, Bridge::Worker.new(log_level: "DEBUG").logger.level
    assert_raises(ArgumentError) { Bridge::Worker.new(log_level: "loud") }
  end
end
