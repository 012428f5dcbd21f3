# frozen_string_literal: true

require "logger"
require "socket"
require_relative "dispatcher"
require_relative "gearman/connection"
require_relative "logging"
require_relative "security"
require_relative "worker/link"

module Bridge
  # Takes jobs from one or more gearmand servers and answers them through the Dispatcher.
  #
  # Parallelism: +concurrency+ job slots. Every server gets +concurrency+ connections, each served
  # by its own thread (a Link) independently of the other servers: a link holds a slot only while
  # its GRAB_JOB_UNIQ waits for an answer and while it runs the job it got, and it only grabs on a
  # connection whose server has answered (ECHO_RES after connecting, NOOP or an echo after idling).
  # A server that leaves a GRAB or an ECHO unanswered for +read_timeout+ seconds (a frozen or
  # cut-off gearmand) loses that connection, which reconnects with backoff; the other servers keep
  # being served. So does a server that stops reading what a job sends it (its answer, a stream
  # item) for +io_timeout+ (the read timeout by default): the job ends there, gearmand re-queues
  # it, and its slot goes back at once. Ruby's GVL lets threads overlap while they wait (sockets, sleeps, database calls,
  # subprocesses), not while they compute: for CPU-bound handlers run several worker processes.
  #
  # Stop: #stop (safe inside a signal trap: it only sets a flag and writes one byte to a pipe)
  # makes every link stop grabbing; running jobs finish; links that run no job are given
  # STOP_GRACE seconds, whatever the servers do, then #run returns.
  #
  # Security (docs/security.md, wire contract section 9): a +tls://host:port+ server is reached
  # over TLS (+tls:+, default the BRIDGE_TLS_* environment); with keys (+keys:+, default
  # BRIDGE_KEYS / BRIDGE_KEYS_FILE) every job must be signed by one of them and every reply of a
  # signed job is signed.
  class Worker
    BACKOFF_MIN = 0.1
    BACKOFF_MAX = 5.0
    STOP_GRACE = 1.0

    # A job server: plain, or (+tls+) through a TLS front.
    Server = Struct.new(:host, :port, :tls) do
      def to_s
        where = host.include?(":") ? "[#{host}]:#{port}" : "#{host}:#{port}"
        tls ? "tls://#{where}" : where
      end
    end

    attr_reader :dispatcher, :servers, :concurrency, :read_timeout, :tls

    # +servers+: "host:port,host:port" or an Array of such strings. +read_timeout+: how long a
    # GRAB_JOB_UNIQ or ECHO_REQ may stay unanswered before the connection is given up.
    # +io_timeout+ (default: +read_timeout+): how long a started packet or a write (a job's
    # answer, a stream item) may make no progress before the connection is given up. A healthy
    # gearmand reads and writes continuously, so a stall means it stopped (frozen, cut off): the
    # job ends there (gearmand re-queues it) and its slot goes back to the other servers.
    #
    # +tls+: a Bridge::Security::TlsConfig (or a Hash of its ca:, cert:, key:, server_name:) for
    # the +tls://+ servers; default: BRIDGE_TLS_CA, BRIDGE_TLS_CERT, BRIDGE_TLS_KEY. Its files are
    # loaded here: a wrong one raises Bridge::Security::TlsError now.
    # +keys+: a Bridge::Security::Keyring, a Hash (key id => key bytes) or "id:BASE64,..." text;
    # default: BRIDGE_KEYS or the file BRIDGE_KEYS_FILE when set. With keys, jobs must be signed
    # (section 9.2: UNAUTHENTICATED otherwise) and replies are signed (9.3). +signing_window+:
    # how far ahead (seconds) a signed job's deadline may be; +replay_capacity+: the replay
    # cache's bound (entries).
    #
    # +logger+: where the worker logs (default: stderr, program name bridge-ruby); +log_level+:
    # "debug", "info", "warning" ("warn") or "error", any case, set on that logger (default: the
    # logger's own; the default logger's is BRIDGE_LOG_LEVEL, else info). At debug every job gets
    # a line once answered; every error answer gets one at warning (docs/workers.md).
    def initialize(servers: "127.0.0.1:4730", concurrency: 1,
                   max_request_bytes: Dispatcher::DEFAULT_MAX_REQUEST_BYTES,
                   client_id: nil, logger: nil, log_level: nil,
                   connect_timeout: 5.0, io_timeout: nil, read_timeout: 5.0,
                   tls: nil, keys: nil, signing_window: Security::JobVerifier::DEFAULT_WINDOW,
                   replay_capacity: 100_000)
      raise ArgumentError, "concurrency must be >= 1" unless concurrency.is_a?(Integer) && concurrency >= 1
      raise ArgumentError, "read_timeout must be > 0" unless read_timeout.is_a?(Numeric) && read_timeout.positive?

      @servers = Worker.parse_servers(servers)
      @tls = Worker.tls_settings(@servers, tls)
      @concurrency = concurrency
      @client_id = client_id || "ruby-#{Socket.gethostname}-#{Process.pid}"
      @logger = logger || Worker.default_logger(log_level)
      @logger.level = Worker.log_level(log_level) if logger && !log_level.nil?
      @connect_timeout = connect_timeout
      @io_timeout = io_timeout || read_timeout
      @read_timeout = read_timeout
      # The framing limit sits above the job limit, so an oversized job is still read and
      # answered RESOURCE_EXHAUSTED instead of breaking the connection.
      @max_body = [Gearman::DEFAULT_MAX_BODY, max_request_bytes + 64 * 1024].max
      @dispatcher = Dispatcher.new(max_request_bytes: max_request_bytes, logger: @logger)
      @signing_window = signing_window
      @replay_capacity = replay_capacity
      self.keys = keys.nil? ? Security::Keyring.from_env : keys
      @slots = Slots.new(concurrency)
      @stopping = false
      @wake_reader, @wake_writer = IO.pipe
    end

    # stderr at +level+ (default: BRIDGE_LOG_LEVEL, else info); ArgumentError for an unknown level.
    def self.default_logger(level = nil)
      Logger.new($stderr, level: level.nil? ? Logging.env_level : log_level(level), progname: Logging::PROGNAME)
    end

    # The Logger level of +name+; ArgumentError for an unknown one.
    def self.log_level(name)
      Logging.level(name) or raise ArgumentError, "log level must be one of #{Logging::LEVEL_NAMES}, not #{name.inspect}"
    end

    # "a:1,tls://b:2" or ["a:1", "b"] => Servers (host, port, tls); the port defaults to 4730,
    # "tcp://" is plain.
    def self.parse_servers(servers)
      list = Array(servers).flat_map { |s| s.to_s.split(",") }.map(&:strip).reject(&:empty?)
      raise ArgumentError, "no job server given" if list.empty?

      list.map do |text|
        scheme, rest = text.match(%r{\A(tls|tcp)://(.*)\z}i)&.captures
        server = scheme ? rest : text
        raise ArgumentError, "bad job server address #{text.inspect} (schemes: tls://, tcp://)" if server.include?("/")

        host, port = server.start_with?("[") ? server.match(/\A\[(.*)\](?::(\d+))?\z/)&.captures : server.split(":", 2)
        raise ArgumentError, "bad job server address #{text.inspect}" if host.nil? || host.empty?
        raise ArgumentError, "bad port in #{text.inspect}" if port && port !~ /\A\d+\z/

        number = port ? Integer(port, 10) : 4730
        raise ArgumentError, "port out of 1-65535 in #{text.inspect}" unless number.between?(1, 65_535)

        Server.new(host, number, scheme&.downcase == "tls")
      end
    end

    # The TLS settings of a worker of +servers+: +tls+ (a TlsConfig or a Hash of its options),
    # else, when one of them is tls://, the BRIDGE_TLS_* environment; loaded now.
    def self.tls_settings(servers, tls)
      tls = Security::TlsConfig.new(**tls) if tls.is_a?(Hash)
      return tls unless servers.any?(&:tls)

      (tls || Security::TlsConfig.from_env).check
    end

    # The keys jobs must be signed with (a Bridge::Security::Keyring), or nil.
    def keys = @dispatcher.verifier&.keyring

    # Accept jobs signed by these keys from now on (rotation while serving: the replay cache is
    # kept), or, with nil, stop requiring signed jobs. Same forms as the +keys:+ option.
    def keys=(keys)
      keyring = Security::Keyring.coerce(keys)
      if keyring.nil?
        @dispatcher.verifier = nil
      elsif @dispatcher.verifier
        @dispatcher.verifier.keyring = keyring
      else
        @dispatcher.verifier = Security::JobVerifier.new(keyring, window: @signing_window,
                                                                  replay_capacity: @replay_capacity)
      end
    end

    def add_service(handler)
      @dispatcher.add_service(handler)
      self
    end

    def stopping? = @stopping

    # Asks every link to stop taking jobs; running jobs finish first. Signal-trap safe.
    def stop
      @stopping = true
      @wake_writer.write_nonblock("x", exception: false)
    rescue IOError
      nil
    end

    # Serves until #stop. With +trap_signals+, SIGTERM and SIGINT call #stop.
    def run(trap_signals: false)
      raise ArgumentError, "no service added" if @dispatcher.function_names.empty?

      previous = trap_signals ? %w[TERM INT].to_h { |sig| [sig, Signal.trap(sig) { stop }] } : {}
      signed = keys ? "; signed jobs only (key ids: #{keys.ids})" : ""
      @logger.info("serving #{@dispatcher.function_names.size} function(s) on " \
                   "#{@servers.join(",")} with #{@concurrency} job slot(s)#{signed}")
      links = @servers.flat_map { |server| Array.new(@concurrency) { |i| Link.new(self, server, i) } }
      threads = links.map do |link|
        Thread.new do
          Thread.current.name = "bridge-#{link}"
          Thread.current.report_on_exception = false
          link.run
        end
      end
      IO.select([@wake_reader], nil, nil, 1.0) until @stopping || threads.none?(&:alive?)
      @logger.info("stopping: no new jobs; finishing running jobs (#{links.count(&:in_job?)})")
      finish(links, threads)
      @logger.info("stopped")
    ensure
      previous&.each { |sig, handler| Signal.trap(sig, handler || "DEFAULT") }
    end

    # --- used by the links ---------------------------------------------------------------------

    attr_reader :wake_reader, :logger, :slots, :client_id # :nodoc:

    def new_connection(server) # :nodoc:
      Gearman::Connection.new(server.host, server.port, connect_timeout: @connect_timeout, io_timeout: @io_timeout,
                                                        max_body: @max_body, interrupt: @wake_reader,
                                                        tls: server.tls ? @tls : nil)
    end

    # Job slots shared by every link: at most +concurrency+ GRABs in flight or jobs running. A slot
    # given back while links wait goes to the one waiting longest, so a server with a long queue
    # cannot keep the slots from the others.
    class Slots
      Waiter = Struct.new(:granted)

      def initialize(count)
        @free = count
        @waiting = []
        @lock = Mutex.new
        @freed = ConditionVariable.new
      end

      # Takes a slot; false (and no slot) once +worker+ is stopping.
      def acquire(worker)
        @lock.synchronize do
          return false if worker.stopping?

          if @free.positive? && @waiting.empty?
            @free -= 1
            return true
          end
          me = Waiter.new(false)
          @waiting << me
          until me.granted
            if worker.stopping?
              @waiting.delete(me)
              return false
            end
            @freed.wait(@lock, 0.1) # short: #stop cannot signal from a trap
          end
          return true unless worker.stopping?

          give_back # granted while stopping: pass it on
          false
        end
      end

      def release
        @lock.synchronize { give_back }
      end

      private

      def give_back
        waiter = @waiting.shift
        if waiter
          waiter.granted = true
          @freed.broadcast
        else
          @free += 1
        end
      end
    end

    private

    # After #stop: links running a job finish it; the others get STOP_GRACE seconds (they are
    # waiting on a socket or the stop pipe and normally end at once), then are ended.
    def finish(links, threads)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + STOP_GRACE
      threads.zip(links).each do |thread, link|
        until thread.join(0.05)
          next unless Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline && !link.in_job?

          @logger.warn("#{link}: did not stop within #{STOP_GRACE} s; ending it")
          thread.kill
          thread.join(1)
          break
        end
        crashed = thread.value rescue $! # rubocop:disable Style/RescueModifier
        @logger.error("#{link} crashed: #{crashed.class}: #{crashed.message}") if crashed.is_a?(Exception)
      end
    end
  end
end
